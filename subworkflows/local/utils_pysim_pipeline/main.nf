/*
 * The pipeline's start and end (nf-core's utils_<name>_pipeline): PIPELINE_INITIALISATION
 * (--help, the parameter checks of nextflow_schema.json and those the schema cannot say, the
 * summary of the non-default parameters, pipeline_info/params_<timestamp>.json) and
 * PIPELINE_COMPLETION (the completion summary in the log, by mail, and as a JSON POST), with
 * the helpers they and the workflow share. Functions here stop a run with one line (error()).
 */

import groovy.json.JsonOutput
import groovy.json.JsonSlurper

/** The parameter schema, nextflow_schema.json (lib/ParamsSchema.groovy): --help and the checks. */
def paramsSchema() {
    return new ParamsSchema(file("${projectDir}/nextflow_schema.json"))
}

/** --help: the usage line and every parameter of the schema, group by group. */
def helpText() {
    return '\nUsage: nextflow run main.nf -profile <test|local|slurm|apptainer|gpu,...> [--param value ...]\n' +
        'Parameters (nextflow_schema.json), [default]:\n' + paramsSchema().help(params)
}

/** Stops the run before any task with one line naming the problem. */
def fail(String message) {
    error(message)
}

/** Checks the params against the schema, then what it cannot say; any problem stops with one line. */
def checkParams() {
    def problem = paramsSchema().check(params)
    if (problem) {
        fail(problem)
    }
    def root = params.dataset_root
    if (!params.demo_data && (root == null || root == true || root.toString().trim() == '')) {
        fail('Missing required parameter --dataset_root (see --help)')
    }
    if (params.subset_sizes == true) {
        fail('--subset_sizes needs a value (comma-separated positive integers, e.g. 1,5,10; false: off)')
    }
    checkContainer()
    checkPublishMode()
}

/** The file store of a path, or of its nearest existing parent; null where none can be read. */
def fileStore(path) {
    try {
        def p = path.toAbsolutePath()
        while (p != null && !java.nio.file.Files.exists(p)) {
            p = p.parent
        }
        return p == null ? null : java.nio.file.Files.getFileStore(p)
    } catch (Exception ignored) {
        return null
    }
}

/** Hard links (--publish_dir_mode link, the default) cannot cross file systems. */
def checkPublishMode() {
    if (params.publish_dir_mode != 'link') {
        return
    }
    def out = fileStore(file(params.outdir.toString()))
    def work = fileStore(workflow.workDir)
    if (out != null && work != null && out != work) {
        fail("--publish_dir_mode link: --outdir ${params.outdir} and the work folder ${workflow.workDir} are on different file systems, where hard links cannot go; add --publish_dir_mode copy (or put them on one file system)")
    }
}

/** Under apptainer, a local image must exist: GPU tasks never fall back to the CPU image. */
def checkContainer() {
    def image = workflow.containerEngine ? workflow.container : null
    if (!(image instanceof String) || image.contains('://') || file(image).exists()) {
        return
    }
    def gpu = image.endsWith('pysim-gpu.sif')
    fail("-profile apptainer: image not found: ${image}" + (gpu
        ? ' (GPU tasks run on CUDA); build it with `make containers CONTAINERS=gpu`, or name one with --container or --container_dir'
        : '; build it with `make containers CONTAINERS=cpu`, or name one with --container or --container_dir'))
}

/** Launch-time pre-check of the model table: valid JSON, and every --model_ids id in it.
 *  Returns the selected ids in table order; the entries themselves (and their
 *  representations) come from VALIDATE's models.json (pysim/validate.py). */
def loadModelIds(modelsFile) {
    def table
    try {
        table = new JsonSlurper().parse(modelsFile.toFile())
    } catch (Exception exc) {
        fail("--models: ${modelsFile}: not valid JSON (${exc.message.readLines()[0]})")
    }
    if (!(table instanceof Map) || table.isEmpty()) {
        fail("--models: ${modelsFile}: must be a non-empty JSON object keyed by model id")
    }
    def ids = table.keySet() as List
    if (params.model_ids) {
        def wanted = params.model_ids.toString().tokenize(',')*.trim()
        def unknown = wanted.findAll { !(it in ids) }
        if (unknown) {
            fail("--model_ids: unknown model id '${unknown[0]}' (not in ${modelsFile.name})")
        }
        ids = ids.findAll { it in wanted }
    }
    def bad = ids.find { it.contains('/') || it.contains("'") || it.startsWith('.') }
    if (bad) {
        fail("--models: model id '${bad}' cannot be used as a file name")
    }
    return ids
}

/** The model table as VALIDATE wrote it (models.json: id -> the entry, plus layer_wise and
 *  representations, pysim/validate.py), parsed once for the channels. */
def readModelTable(path) {
    return new JsonSlurper().parseText(path.text) as Map
}

/** One model's own table entry as JSON text (VALIDATE's additions left out): EXTRACT's hash
 *  changes only with that entry. */
def modelEntryJson(String id, Map entry) {
    def own = entry.findAll { k, v -> !(k in ['layer_wise', 'representations']) }
    return JsonOutput.prettyPrint(JsonOutput.toJson([(id): own]))
}

/** The models' order and representation count from models.json: ids (table order) and
 *  total (every representation; null where a pattern was not expanded by VALIDATE). */
def modelOrder(Map table) {
    def reps = table.values()*.representations
    return [ids: table.keySet() as List, total: reps.every { it != null } ? reps.sum { it.size() } : null]
}

/** A feature file's meta: the representation (id from its file name, `<representation id>.h5`,
 *  DESIGN §3), primary or not and its order within its model, from VALIDATE's representations. */
def representationMeta(Map meta, Object file) {
    def id = file.name[0..-4]
    def reps = meta.representations
    def primary = reps ? reps[0] == id : id == meta.model
    return [dataset: meta.dataset, dataset_id: meta.dataset_id, model: meta.model, id: id,
            primary: primary, order: reps ? reps.indexOf(id) : (primary ? 0 : null)]
}

/** Sort key of a representation: table position of its model, then its order (VALIDATE's), then
 *  its id (only where a pattern was left unexpanded: the further files by name). */
def representationRank(Map meta, List ids) {
    return [ids.indexOf(meta.model), meta.order == null ? Integer.MAX_VALUE : meta.order, meta.id]
}

/** Compares two rank lists element by element. */
def compareRanks(List a, List b) {
    return [a, b].transpose().findResult { x, y -> (x <=> y) ?: null } ?: 0
}

/** A list as the single item of a channel element (so that `combine` does not spread it). */
def boxed(channel) {
    return channel.toList().map { [it] }
}

/** sha256 of a local image file, computed once per run (images are GBs). */
IMAGE_DIGESTS = [:]
def imageDigest(String path) {
    synchronized (IMAGE_DIGESTS) {
        if (!IMAGE_DIGESTS.containsKey(path)) {
            def sha = java.security.MessageDigest.getInstance('SHA-256')
            new File(path).withInputStream { stream ->
                byte[] buffer = new byte[1 << 20]
                for (int n = stream.read(buffer); n > 0; n = stream.read(buffer)) {
                    sha.update(buffer, 0, n)
                }
            }
            IMAGE_DIGESTS[path] = sha.digest().encodeHex().toString()
        }
        return IMAGE_DIGESTS[path]
    }
}

/** A versions.yml block whose local .sif image gets its digest (`image.sif@sha256:...`). */
def withImageDigest(String block) {
    return block.replaceAll(/(?m)^(\s+container: )"([^"@]+\.sif)"$/) { all, head, path ->
        new File(path).isFile() ? "${head}\"${path}@sha256:${imageDigest(path)}\"" : all
    }
}

/** The versions.yml blocks as one file (one block per process, sorted by process name). */
def collectVersions(versions, Map options) {
    return versions.map { withImageDigest(it.text) }.unique()
        .collectFile([name: 'software_versions.yml', sort: true] + options)
}

/** A parameter value as JSON can hold it (sizes, durations and paths as their text). */
def plainValue(Object value) {
    return value == null || value instanceof Boolean || value instanceof Number ? value : value.toString()
}

/** The params whose value is not the schema's default (machine-dependent ones left out). */
def nonDefaultParams() {
    def props = paramsSchema().props
    return params.findAll { name, value ->
        def prop = props[name.toString()]
        if (prop == null) {
            return value != null
        }
        if (prop.help_text?.toString()?.contains('No fixed default')) {
            return false
        }
        def wanted = prop.containsKey('default') ? prop.default : null
        return wanted == null ? !(value in [null, false, '']) : value.toString() != wanted.toString()
    }.sort { it.key }
}

/** The launch summary: the run, then every non-default parameter, one a line. */
def paramsSummary() {
    def lines = ["pysim ${workflow.manifest.version ?: ''} (run ${workflow.runName}, session ${workflow.sessionId})",
                 "  profile: ${workflow.profile}; work dir: ${workflow.workDir}",
                 '  parameters other than the defaults (--help lists them all):']
    nonDefaultParams().each { name, value -> lines << "    --${name.padRight(26)} ${value}" }
    return lines.join('\n')
}

/** pipeline_info/params_<timestamp>.json: every parameter of this run (nf-core's record). */
def dumpParams(String outdir) {
    def stamp = new java.util.Date().format('yyyy-MM-dd_HH-mm-ss')
    def target = file("${outdir}/pipeline_info/params_${stamp}.json")
    target.parent.mkdirs()
    def values = params.collectEntries { name, value -> [(name.toString()): plainValue(value)] }
    target.text = JsonOutput.prettyPrint(JsonOutput.toJson(values.sort { it.key })) + '\n'
}

/** The completion summary (log, mail, hook): status, tasks, duration, outdir, the report. */
def completionSummary(String outdir) {
    def stats = workflow.stats
    def out = file(outdir).toAbsolutePath().toString()
    return [
        pipeline   : 'pysim',
        version    : workflow.manifest.version,
        runName    : workflow.runName,
        sessionId  : workflow.sessionId.toString(),
        success    : workflow.success,
        status     : workflow.success ? 'succeeded' : 'failed',
        exitStatus : workflow.exitStatus,
        errorMessage: workflow.success ? null : workflow.errorMessage,
        diskFull   : workflow.success ? null :
            diskFullLine([workflow.errorMessage, workflow.errorReport].findAll().join('\n'),
                         out, workflow.workDir.toString()),
        start      : workflow.start.toString(),
        complete   : workflow.complete.toString(),
        duration   : workflow.duration.toString(),
        tasks      : [succeeded: stats.succeededCount, cached: stats.cachedCount,
                      failed: stats.failedCount, ignored: stats.ignoredCount],
        outdir     : out,
        report     : workflow.success ? "${out}/report/index.html" : null,
        commandLine: workflow.commandLine,
        profile    : workflow.profile,
    ]
}

/**
 * A run that failed for lack of space (a task's stderr or a publishing error says "No space
 * left on device"): one line naming the folder, the space it needed where known (pysim's own
 * line says it), and that -resume continues once space is freed; null for any other end.
 */
def diskFullLine(String text, String outdir, String workDir) {
    if (!text || !text.toLowerCase().contains('no space left on device')) {
        return null
    }
    def folder = null
    def needed = null
    def own = text =~ /no space left on device in (\S.*?)(?: \(it needed ([^)]+)\))?;/
    if (own.find()) {  // pysim's DiskFullError line
        folder = own.group(1)
        needed = own.group(2)
    } else {  // java.nio / coreutils: "<path>: No space left on device"
        def path = text =~ /(?:'|`)?(\/[^\s:'`]+)(?:'|`)?:\s*No space left on device/
        if (path.find()) {
            def found = new File(path.group(1))
            folder = found.isDirectory() ? found.path : found.parent
        }
    }
    def where = folder ?: "the output folder ${outdir} or the work folder ${workDir}"
    return "pysim: no space left on device in ${where}" + (needed ? " (it needed ${needed})" : '') +
        '; free space there and rerun with -resume, which continues where the run stopped'
}

/** The summary as text lines (log and mail). */
def summaryText(Map summary) {
    def t = summary.tasks
    return ["pysim run ${summary.runName} ${summary.status} after ${summary.duration}",
            "  tasks: ${t.succeeded} succeeded, ${t.cached} cached, ${t.failed} failed, ${t.ignored} ignored",
            "  outdir: ${summary.outdir}",
            summary.report ? "  report: ${summary.report}" : "  error: ${summary.errorMessage ?: 'see .nextflow.log'}",
            summary.diskFull,
    ].findAll().join('\n')
}

/** --email / --email_on_fail: the summary through Nextflow's mail support (`mail` scope). */
def sendEmail(Map summary, String email, String emailOnFail) {
    def to = email ?: (!summary.success ? emailOnFail : null)
    if (!to) {
        return
    }
    try {
        sendMail(to: to, subject: "[pysim] ${summary.runName} ${summary.status}",
                 body: summaryText(summary) + '\n\n' + JsonOutput.prettyPrint(JsonOutput.toJson(summary)))
        log.info("pysim: summary mailed to ${to}")
    } catch (Exception exc) {
        log.warn("pysim: could not mail the summary to ${to} (${exc.message}); see the mail scope of the Nextflow config")
    }
}

/** --hook_url: the summary as a JSON POST; a failure to deliver only warns. */
def sendHook(Map summary, String url) {
    if (!url) {
        return
    }
    try {
        def connection = new URL(url).openConnection() as HttpURLConnection
        connection.requestMethod = 'POST'
        connection.doOutput = true
        connection.connectTimeout = 10000
        connection.readTimeout = 10000
        connection.setRequestProperty('Content-Type', 'application/json')
        connection.outputStream.withWriter('UTF-8') { it << JsonOutput.toJson(summary) }
        def code = connection.responseCode
        if (code >= 300) {
            log.warn("pysim: --hook_url ${url} answered HTTP ${code}")
        }
    } catch (Exception exc) {
        log.warn("pysim: --hook_url ${url}: ${exc.message}")
    }
}

workflow PIPELINE_INITIALISATION {
    take:
    help    // boolean: --help, print the parameters and stop
    outdir  // string: --outdir (pipeline_info/params_<timestamp>.json)

    main:
    if (help) {
        log.info(helpText())
        exit 0
    }
    checkParams()
    loadModelIds(file(params.models))  // --model_ids against the table, before any task
    log.info(paramsSummary())
    dumpParams(outdir)
}

workflow PIPELINE_COMPLETION {
    take:
    outdir         // string: --outdir
    email          // string or null: --email
    email_on_fail  // string or null: --email_on_fail
    hook_url       // string or null: --hook_url

    main:
    workflow.onComplete {
        def summary = completionSummary(outdir)
        log.info(summaryText(summary))
        sendEmail(summary, email, email_on_fail)
        sendHook(summary, hook_url)
    }
}
