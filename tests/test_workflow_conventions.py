"""nf-core habits of the workflow: publishDir and ext.args (conf/modules.config), versions.yml
per process and pipeline_info/software_versions.yml, site configs, the lenient profile, and
the record of every run (launch summary, params_<time>.json, completion summary, --email,
--hook_url).

One stub run (module fixture) serves the publishing, versions, site-config and record tests:
it publishes with --publish_dir_mode symlink, runs "in" a fake local image
(APPTAINER_CONTAINER, which Apptainer sets in a task), loads a site profile from
--custom_config_base, passes --model_sets (an optional input file) to CONSISTENCY, and posts
its summary to an HTTP server and mails it through an SMTP server, both on 127.0.0.1 (threads
of this test).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml
from nf_helpers import (
    REPO,
    TEST_MODELS,
    dataset_key,
    demo_run_args,
    latest_trace,
    read_trace,
    run_nf,
    write_inputs,
)

import pysim

SITE_PROFILE = """
profiles {
    mysite {
        process { withName: 'VALIDATE' { tag = 'from-site-profile' } }
    }
}
"""


class HookHandler(BaseHTTPRequestHandler):
    """Keeps every POST (path, headers, body) on the server."""

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.posts.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


class SmtpHandler(socketserver.StreamRequestHandler):
    """The few SMTP commands a client sends for one plain message; keeps each message."""

    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self):
        self.reply("220 localhost test SMTP")
        message = {"to": [], "data": ""}
        while line := self.rfile.readline().decode(errors="replace"):
            verb = line[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 localhost")
            elif verb == "RCPT":
                message["to"].append(line.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with .")
                lines = []
                while (data := self.rfile.readline().decode(errors="replace")) not in (".\r\n", ""):
                    lines.append(data)
                message["data"] = "".join(lines)
                self.server.messages.append(dict(message))
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:  # MAIL, RSET, NOOP
                self.reply("250 OK")


def serve(server):
    """Runs `server` in a daemon thread; returns it."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def stub_run(tmp_path_factory):
    """A `-profile test,mysite -stub-run` with symlinks, a fake image, a site config, a hook
    and a mail address."""
    hook = serve(HTTPServer(("127.0.0.1", 0), HookHandler))
    hook.posts = []
    smtp = serve(socketserver.ThreadingTCPServer(("127.0.0.1", 0), SmtpHandler))
    smtp.messages = []
    launch = tmp_path_factory.mktemp("conventions")
    image = launch / "fake.sif"
    image.write_bytes(os.urandom(4096))
    (launch / "image.config").write_text(
        f"env.APPTAINER_CONTAINER = '{image}'\n"
        f"mail {{ from = 'pysim@localhost'; smtp.host = '127.0.0.1'; "
        f"smtp.port = {smtp.server_address[1]} }}\n")
    site = launch / "site"
    site.mkdir()
    (site / "nfcore_custom.config").write_text(SITE_PROFILE)
    proc = run_nf(["run", str(REPO / "main.nf"), "-profile", "test,mysite", "-stub-run",
                   "--outdir", "out", "--publish_dir_mode", "symlink",
                   "--custom_config_base", str(site), "-c", "image.config",
                   "--model_sets", str(REPO / "assets" / "paper" / "model_sets.yaml"),
                   "--hook_url", f"http://127.0.0.1:{hook.server_address[1]}/pysim-hook",
                   "--email", "someone@example.org"],
                  cwd=launch, timeout=900)
    hook.shutdown()
    smtp.shutdown()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return {"launch": launch, "out": launch / "out", "image": image, "stdout": proc.stdout,
            "posts": hook.posts, "messages": smtp.messages}


@pytest.mark.slow
def test_symlink_mode_makes_every_published_output_a_symlink(stub_run):
    out = stub_run["out"]
    published = []
    for folder, dirs, files in os.walk(out):  # symlinked folders are listed, not entered
        here = Path(folder)
        for name in [*dirs, *files]:
            path = here / name
            if path.is_symlink():
                published.append(path.relative_to(out))
            elif not path.is_dir() and here != out / "pipeline_info":
                pytest.fail(f"published as a plain file: {path.relative_to(out)}")
    # pipeline_info holds Nextflow's own records; VALIDATE's report is published there
    assert (out / "pipeline_info" / "validate.txt").is_symlink()
    for rel in ("report", "consistency/consistency.csv", "performance/similarity_vs_gap.csv",
                f"subsets/{dataset_key('wds/demo_digits')}.json"):
        assert Path(rel) in published, rel
    assert all((out / rel).exists() for rel in published)  # none dangles
    assert not list(out.rglob("versions.yml"))  # collected, never published one by one


@pytest.mark.slow
def test_software_versions_lists_every_process_with_the_real_versions(stub_run):
    out, image = stub_run["out"], stub_run["image"]
    table = yaml.safe_load((out / "pipeline_info" / "software_versions.yml").read_text())
    processes = {row["process"] for row in read_trace(latest_trace(out))}
    assert set(table) == processes
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    expected = {
        "python": platform.python_version(),
        "pysim": pysim.__version__,
        "torch": importlib.metadata.version("torch"),
        "timm": importlib.metadata.version("timm"),
        "open_clip": importlib.metadata.version("open_clip_torch"),
        "container": f"{image}@sha256:{digest}",
    }
    import torch

    for process, versions in table.items():
        assert versions == {**expected, "cuda": torch.version.cuda or "none"}, process


@pytest.mark.slow
def test_report_gets_the_versions_of_the_processes_before_it(stub_run):
    rows = read_trace(latest_trace(stub_run["out"]))
    workdir = Path(next(row["workdir"] for row in rows if row["process"] == "REPORT"))
    staged = workdir / "results" / "pipeline_info" / "software_versions.yml"
    table = yaml.safe_load(staged.read_text())
    assert set(table) == {row["process"] for row in rows} - {"REPORT"}


@pytest.mark.slow
def test_model_sets_file_reaches_consistency(stub_run):
    rows = read_trace(latest_trace(stub_run["out"]))
    workdir = Path(next(row["workdir"] for row in rows if row["process"] == "CONSISTENCY"))
    staged = workdir / "model_sets" / "model_sets.yaml"
    assert staged.resolve() == REPO / "assets" / "paper" / "model_sets.yaml"
    assert (stub_run["out"] / "consistency" / "model_set_pairs.csv").is_symlink()
    # VALIDATE gets it too (the real script refuses a bad one before any extraction)
    workdir = Path(next(row["workdir"] for row in rows if row["process"] == "VALIDATE"))
    assert (workdir / "model_sets" / "model_sets.yaml").resolve() == staged.resolve()


@pytest.mark.slow
def test_site_config_profile_from_custom_config_base(stub_run):
    names = [row["name"] for row in read_trace(latest_trace(stub_run["out"]))]
    assert "VALIDATE (from-site-profile)" in names


def test_custom_config_base_without_the_file_is_one_line(tmp_path):
    proc = run_nf(["run", str(REPO / "main.nf"), "--help", "--custom_config_base",
                   str(tmp_path)], cwd=tmp_path, timeout=180)
    assert proc.returncode != 0
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines()
             if "no nfcore_custom.config" in line]
    assert lines == [f"--custom_config_base: no nfcore_custom.config in {tmp_path}"], lines


def test_lenient_profile_sets_lenient_cache(tmp_path):
    proc = run_nf(["config", "-flat", str(REPO), "-profile", "slurm,lenient"], cwd=tmp_path,
                  timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "process.cache = 'lenient'" in proc.stdout.splitlines()


@pytest.mark.slow
def test_ext_args_reach_the_entry_point(tmp_path):
    # A real run (the stub's .command.sh holds the stub): the options of MAKE_SUBSET come from
    # ext.args (conf/modules.config), which a -c file replaces (nf-core's habit): its command
    # ends with them, and the subset is the one drawn with seed 7.
    inputs = write_inputs(tmp_path / "inputs", TEST_MODELS[:2])
    (tmp_path / "args.config").write_text(
        "process { withName: 'MAKE_SUBSET' {\n"
        "    ext.args = { \"--max-samples ${params.max_samples} --mode per_class --seed 7\" }\n"
        "} }\n")
    proc = run_nf([*demo_run_args(inputs), "--skip_probes", "-c", "args.config"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    rows = read_trace(latest_trace(tmp_path / "results"))
    workdir = Path(next(row["workdir"] for row in rows if row["process"] == "MAKE_SUBSET"))
    command = (workdir / ".command.sh").read_text()
    joined = " ".join(command.split())
    assert '--mode per_class --seed 7 pysim-versions "MAKE_SUBSET"' in joined
    assert "--seed 0" not in joined  # replaced, not appended to
    key = dataset_key("wds/demo_digits")
    subset = json.loads((tmp_path / "results" / "subsets" / f"{key}.json").read_text())
    assert subset["seed"] == 7


@pytest.mark.slow
def test_launch_summary_names_the_non_default_params(stub_run):
    start = stub_run["stdout"].index("parameters other than the defaults")
    block = stub_run["stdout"][start:].split("\n\n")[0]
    lines = {line.split()[0]: line.split(None, 1)[1] for line in block.splitlines()[1:]
             if line.strip().startswith("--")}
    assert lines["--publish_dir_mode"] == "symlink"  # given on the command line
    assert lines["--max_samples"] == "200"  # -profile test's value
    assert lines["--hook_url"].endswith("/pysim-hook")
    for default in ("--seed", "--normalize", "--help", "--skip_probes", "--max_cpus"):
        assert default not in lines  # the default value, or machine-dependent


@pytest.mark.slow
def test_params_file_holds_every_param_of_the_run(stub_run):
    files = sorted((stub_run["out"] / "pipeline_info").glob("params_*.json"))
    assert len(files) == 1 and len(files[0].stem) == len("params_yyyy-mm-dd_HH-MM-SS")
    values = json.loads(files[0].read_text())
    # every param the run has (a profile's own, e.g. -profile apptainer's, only with it)
    assert {"models", "datasets", "metrics", "outdir", "seed", "max_samples", "demo_data",
            "custom_config_base", "email", "email_on_fail", "hook_url", "max_memory"} <= set(values)
    assert values["publish_dir_mode"] == "symlink" and values["max_samples"] == 200
    assert values["seed"] == 0 and values["email"] == "someone@example.org"
    assert values["model_sets"] == str(REPO / "assets" / "paper" / "model_sets.yaml")


@pytest.mark.slow
def test_hook_gets_the_completion_summary_as_json(stub_run):
    assert len(stub_run["posts"]) == 1
    path, headers, body = stub_run["posts"][0]
    assert path == "/pysim-hook" and headers["Content-Type"] == "application/json"
    summary = json.loads(body)
    rows = read_trace(latest_trace(stub_run["out"]))
    out = stub_run["out"].resolve()
    assert summary["success"] is True and summary["status"] == "succeeded"
    assert summary["tasks"] == {"succeeded": len(rows), "cached": 0, "failed": 0, "ignored": 0}
    assert summary["outdir"] == str(out)
    assert summary["report"] == str(out / "report" / "index.html")
    assert summary["runName"] in stub_run["stdout"]
    assert summary["duration"]  # e.g. "41.2s"


@pytest.mark.slow
def test_completion_summary_in_the_log_and_by_mail(stub_run):
    out = stub_run["out"].resolve()
    rows = read_trace(latest_trace(stub_run["out"]))
    text = stub_run["stdout"]
    assert f"tasks: {len(rows)} succeeded, 0 cached, 0 failed, 0 ignored" in text
    assert f"outdir: {out}" in text and f"report: {out / 'report' / 'index.html'}" in text
    assert len(stub_run["messages"]) == 1
    message = stub_run["messages"][0]
    assert message["to"] == ["someone@example.org"]
    assert "succeeded" in message["data"] and f"report: {out / 'report' / 'index.html'}" in \
        message["data"].replace("=\r\n", "")
