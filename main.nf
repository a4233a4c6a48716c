#!/usr/bin/env nextflow
/*
 * pysim: cross-dataset consistency of representational similarity between vision models.
 * VALIDATE -> EXTRACT_FEATURES [-> DERIVE_FEATURES] -> MAKE_SUBSET -> COMPUTE_SIMILARITY
 *   -> LINEAR_PROBE -> CONSISTENCY -> SIM_VS_PERF -> REPORT
 *   [ImageNet listed: DERIVE_FEATURES -> FULL_SUBSET -> SUBSET_SIZE_SIMILARITY -> SUBSET_SIZE]
 *   (DESIGN.md §7; every step calls one bin/ entry point)
 */
nextflow.enable.dsl = 2

import groovy.json.JsonOutput
import groovy.json.JsonSlurper

include { DEMO_DATA          } from './modules/demo_data'
include { VALIDATE           } from './modules/validate'
include { EXTRACT_FEATURES   } from './modules/extract'
include { DERIVE_FEATURES    } from './modules/derive'
include { MAKE_SUBSET        } from './modules/subset'
include { FULL_SUBSET        } from './modules/subset'
include { COMPUTE_SIMILARITY } from './modules/similarity'
include { COMPUTE_SIMILARITY as SUBSET_SIZE_SIMILARITY } from './modules/similarity'
include { SUBSET_SIZE        } from './modules/subset_size'
include { LINEAR_PROBE       } from './modules/probe'
include { CONSISTENCY        } from './modules/consistency'
include { SIM_VS_PERF        } from './modules/sim_vs_perf'
include { REPORT             } from './modules/report'

def helpText() {
    return """
    Usage: nextflow run main.nf -profile <test|local|slurm|apptainer|gpu,...> [--param value ...]

    Required:
      --models FILE            model table (JSON, seed format)
      --datasets FILE          dataset list (one dataset id per line)
      --metrics FILE           metric list (JSON, seed format)
      --dataset_root DIR       folder holding the datasets (CLIP-benchmark layout);
                               not needed with --demo_data (the test profile)
      --outdir DIR             results folder (DESIGN §5 layout)
    Optional:
      --dataset_info FILE      dataset table (display names, domains)             [${params.dataset_info}]
      --demo_data              generate the bundled demo datasets instead of --dataset_root [${params.demo_data}]
      --model_ids A,B          run only these model ids of the table               [${params.model_ids}]
      --skip_probes            no linear probes (and no similarity-vs-accuracy)    [${params.skip_probes}]
      --max_samples N          subset size per dataset                              [${params.max_samples}]
      --subset_mode M          per_class (ceil(N/C) per class) or balanced          [${params.subset_mode}]
      --seed S                 seed of subsets, permutations, bootstrap             [${params.seed}]
      --device auto|cpu|cuda   device of extraction and similarity                  [${params.device}]
      --precision P            extraction precision (fp32, fp16, bf16)              [${params.precision}]
      --batch_size N           extraction batch size                                [${params.batch_size}]
      --num_workers N          data-loading workers per extraction task             [${params.num_workers}]
      --decode cpu|gpu         extraction decoding: PIL in CPU workers, or JPEG decode + preprocessing on --device [${params.decode}]
      --feature_dtype T        stored features: float32, or float16 (half the disk)  [${params.feature_dtype}]
      --normalize l2|none      feature normalisation before the metrics             [${params.normalize}]
      --similarity_memory SIZE memory budget of the similarity engine (e.g. 48.GB)  [80% of the task's memory]
      --probe_lrs LIST         probe learning rates                                 [${params.probe_lrs}]
      --probe_epochs N         probe epochs                                         [${params.probe_epochs}]
      --probe_seeds LIST       probe seeds                                          [${params.probe_seeds}]
      --probe_batch_size N     probe mini-batch size                                [${params.probe_batch_size}]
      --probe_selection S      lr / weight decay: per_seed or shared                [${params.probe_selection}]
      --probe_wd_grid G        weight-decay grid: paper (64 points) or fine         [${params.probe_wd_grid}]
      --probe_tie_break T      validation ties: order (the study's) or loss         [${params.probe_tie_break}]
      --probe_val_proportion F validation part of the train split                  [${params.probe_val_proportion}]
      --probe_test_from_train  datasets without a test split: carve one from train  [${params.probe_test_from_train}]
      --probe_device cpu|cuda  device of the probes (cuda: a GPU task)              [cuda with --device cuda, else cpu]
      --subset_sizes LIST      images per class of the ImageNet subset-size sensitivity (with
                               ImageNet in --datasets; 10 is the reference; false: off) [${params.subset_sizes}]
      --permutations N         Mantel permutations                                  [${params.permutations}]
      --bootstrap N            bootstrap resamples                                  [${params.bootstrap}]
      --consistency_transform T similarities transformed before consistency: none, tan, arccos [${params.consistency_transform}]
      --consistency_anchors A,B anchor models of the anchor analysis                [every model]
      --publish_dir_mode MODE  how outputs are published: link (hard link), copy, symlink, ... [${params.publish_dir_mode}]
      --publish_features BOOL  also publish the feature files                       [${params.publish_features}]
    Weights (offline compute nodes):
      --weights_dir DIR        folder filled by bin/pysim-fetch-weights; every task sees it as
                               HF_HOME, TORCH_HOME, PYSIM_OPENCLIP_CACHE (bound under apptainer) [${params.weights_dir}]
    SLURM (-profile slurm):
      --cpu_partition P        partition of CPU tasks                               [${params.cpu_partition}]
      --gpu_partition P        partition of GPU tasks                               [${params.gpu_partition}]
      --gpu_gres G             GPU request of GPU tasks                             [${params.gpu_gres}]
      --slurm_account A        account charged                                      [${params.slurm_account}]
      --slurm_queue_size N     jobs queued at once (keep it under your QOS submit limit) [${params.slurm_queue_size}]
      --slurm_retry_reason RE  sbatch errors retried later (regex)                  [see nextflow.config]
      --array_size N           extraction tasks per SLURM job array (0: one job per task) [${params.array_size}]
    Apptainer (-profile apptainer):
      --container FILE|URI     the image of every task                             [${params.container}]
      --container_dir DIR      folder with pysim-cpu.sif / pysim-gpu.sif            [${params.container_dir}]
      --apptainer_binds A,B    more host folders bound into every task              [${params.apptainer_binds}]
    Limits (cap every task's request; set them to your partitions' limits):
      --max_cpus N             [${params.max_cpus}]
      --max_memory SIZE        [${params.max_memory}]
      --max_time DURATION      [${params.max_time}]
    """.stripIndent()
}

/** Stops the run before any task with one line naming the problem. */
def fail(String message) {
    error(message)
}

/** Checks the params and returns the parsed inputs; any problem stops with one line. */
def checkParams() {
    def required = ['models', 'datasets', 'metrics', 'outdir']
    if (!params.demo_data) {
        required << 'dataset_root'
    }
    for (name in required) {
        if (params[name] == null || params[name] == true || params[name].toString().trim() == '') {
            fail("Missing required parameter --${name} (see --help)")
        }
    }
    for (name in ['models', 'datasets', 'metrics', 'dataset_info']) {
        if (params[name] && !file(params[name].toString()).isFile()) {
            fail("--${name}: file not found: ${params[name]}")
        }
    }
    if (!params.demo_data && !file(params.dataset_root.toString()).isDirectory()) {
        fail("--dataset_root: folder not found: ${params.dataset_root}")
    }
    if (!(params.device in ['auto', 'cpu', 'cuda'])) {
        fail("--device must be auto, cpu or cuda, got '${params.device}'")
    }
    if (!(params.feature_dtype in ['float32', 'float16'])) {
        fail("--feature_dtype must be float32 or float16, got '${params.feature_dtype}'")
    }
    if (!(params.decode in ['cpu', 'gpu'])) {
        fail("--decode must be cpu or gpu, got '${params.decode}'")
    }
    if (!(params.consistency_transform in ['none', 'tan', 'arccos'])) {
        fail("--consistency_transform must be none, tan or arccos, got '${params.consistency_transform}'")
    }
    if (params.probe_device != null && !(params.probe_device in ['cpu', 'cuda'])) {
        fail("--probe_device must be cpu or cuda, got '${params.probe_device}'")
    }
    def choices = [subset_mode: ['per_class', 'balanced'], probe_selection: ['per_seed', 'shared'],
                   probe_wd_grid: ['paper', 'fine'], probe_tie_break: ['order', 'loss']]
    choices.each { name, allowed ->
        if (!(params[name] in allowed)) {
            fail("--${name} must be ${allowed.join(' or ')}, got '${params[name]}'")
        }
    }
    for (name in ['max_samples', 'batch_size', 'probe_epochs', 'probe_batch_size', 'permutations', 'bootstrap']) {
        if (!(params[name].toString().isInteger() && params[name].toString().toInteger() > 0)) {
            fail("--${name} must be a positive integer, got '${params[name]}'")
        }
    }
    if (params.subset_sizes && !params.subset_sizes.toString().tokenize(',')*.trim().every {
            it.isInteger() && it.toInteger() > 0 }) {
        fail("--subset_sizes must be a comma-separated list of positive integers, got '${params.subset_sizes}'")
    }
    def arraySize = params.array_size.toString()
    if (!(arraySize.isInteger() && arraySize.toInteger() in 0..1000)) {
        fail("--array_size must be an integer from 0 to 1000 (SLURM's default MaxArraySize is 1001), got '${arraySize}'")
    }
    if (params.max_memory != null && params.max_memory !instanceof Boolean) {
        checkSize('max_memory')
    }
    if (params.similarity_memory != null) {
        checkSize('similarity_memory')
    }
    if (params.weights_dir != null && !file(params.weights_dir.toString()).isDirectory()) {
        fail("--weights_dir: folder not found: ${params.weights_dir} (fill it with bin/pysim-fetch-weights)")
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

/** A size parameter must read as a memory size (e.g. 48.GB, 512 MB). */
def checkSize(String name) {
    try {
        new nextflow.util.MemoryUnit(params[name].toString())
    } catch (Exception ignored) {
        fail("--${name}: cannot read size '${params[name]}' (examples: 48.GB, 512 MB)")
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
 *  Returns the selected ids in table order (the shape of the channels); the entries
 *  themselves come from VALIDATE's models.json (pysim/validate.py). */
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

/** One model's own table entry as JSON text: EXTRACT's hash changes only with that entry. */
def modelEntryJson(String id, Object entry) {
    return JsonOutput.prettyPrint(JsonOutput.toJson([(id): entry]))
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

if (params.help) {
    log.info(helpText())
    exit 0
}
checkParams()

workflow {
    def modelsFile = file(params.models)
    def metricsFile = file(params.metrics)
    def modelIds = loadModelIds(modelsFile)
    def infoFile = params.dataset_info ? file(params.dataset_info) : []

    root = params.demo_data ? DEMO_DATA().root : Channel.value(file(params.dataset_root))

    // VALIDATE first: the selected models' weights are checked before any extraction, and
    // its tables (models.json, datasets.json) are what the channels below are built from.
    VALIDATE(modelsFile, file(params.datasets), metricsFile, root, infoFile,
             params.model_ids ? params.model_ids.toString() : '',
             params.subset_sizes ? params.subset_sizes.toString() : '')
    // A constant gate: EXTRACT waits for VALIDATE without hashing its (table-dependent) output.
    ready = VALIDATE.out.report.map { true }

    model_ch = VALIDATE.out.models.splitJson().map { [it.key, modelEntryJson(it.key, it.value)] }
    datasets = VALIDATE.out.datasets.splitJson()
    // extracted from images: the list's own datasets (and ImageNet once for derived ones)
    extracted = datasets.filter { it.role != 'subset_size' && !it.derived_from }.unique { it.id }
    extracted.filter { it.role == 'extracted' }.subscribe {
        log.info("${it.id}: extracted for the derived datasets of --datasets; not in --datasets, " +
                 "so not analysed as a dataset of its own")
    }
    dataset_ch = root.combine(extracted).map { dir, ds -> [ds.id, ds.key, dir.resolve(ds.folder)] }
    EXTRACT_FEATURES(model_ch.combine(dataset_ch).combine(ready))

    // Derived datasets (the list's and the subset-size ones, each once): one cheap slicing task
    // per (model, derived id) once that model's source (ImageNet) features exist; the list's
    // join the extracted ones downstream. ImageNet itself goes downstream only when listed.
    analysed_keys = boxed(datasets.filter { it.role == 'analysed' }.map { it.key })
    size_keys = boxed(datasets.filter { it.role == 'subset_size' }.map { it.key })
    source_keys = extracted.map { [it.id, it.key] }
    to_derive = datasets.filter { it.derived_from }.unique { it.id }
        .map { [it.derived_from, it.id, it.key] }
        .combine(source_keys, by: 0)
        .map { source, id, key, sourceKey -> [sourceKey, id, key] }
    DERIVE_FEATURES(EXTRACT_FEATURES.out.features.combine(to_derive, by: 0)
        .map { key, id, f, derivedId, derivedKey -> [derivedId, derivedKey, id, f] })
    features = EXTRACT_FEATURES.out.features.mix(DERIVE_FEATURES.out.features)
        .combine(analysed_keys)
        .filter { key, id, f, keys -> key in keys }
        .map { key, id, f, keys -> [key, id, f] }

    // ImageNet subset-size sensitivity: every image of each imagenet-subset-<N>k (no
    // --max_samples cap), similarities kept apart from the analysed datasets' (subset_size/).
    size_features = DERIVE_FEATURES.out.features.combine(size_keys)
        .filter { key, id, f, keys -> key in keys }
        .map { key, id, f, keys -> [key, id, f] }
    FULL_SUBSET(size_features.filter { key, id, f -> id == modelIds[0] }.map { key, id, f -> [key, f] })
    SUBSET_SIZE_SIMILARITY(size_features
        .map { key, id, f -> [key, [modelIds.indexOf(id), f]] }
        .groupTuple(size: modelIds.size())
        .map { key, items -> [key, items.sort { it[0] }.collect { it[1] }] }
        .join(FULL_SUBSET.out.subset), metricsFile.text)

    // The subset depends only on targets and keys (the same for every model): draw it from the
    // first model of the table so that adding models later leaves it cached.
    MAKE_SUBSET(features.filter { key, id, f -> id == modelIds[0] }.map { key, id, f -> [key, f] })

    by_dataset = features
        .map { key, id, f -> [key, [modelIds.indexOf(id), f]] }
        .groupTuple(size: modelIds.size())
        .map { key, items -> [key, items.sort { it[0] }.collect { it[1] }] }
        .join(MAKE_SUBSET.out.subset)
    COMPUTE_SIMILARITY(by_dataset, metricsFile.text)
    sims = COMPUTE_SIMILARITY.out.similarities
        .toSortedList { a, b -> a[0] <=> b[0] }
        .map { list -> list.collect { it[1] } }

    CONSISTENCY(sims, modelsFile, infoFile)
    // After CONSISTENCY: it publishes the whole consistency/ folder (replacing it), where this
    // table goes too.
    SUBSET_SIZE(SUBSET_SIZE_SIMILARITY.out.similarities.map { key, f -> f }.collect(),
                CONSISTENCY.out.tables.map { true })

    // versions.yml of every process (REPORT's joins the stored file only, see below)
    versions = VALIDATE.out.versions.mix(
        EXTRACT_FEATURES.out.versions, DERIVE_FEATURES.out.versions, FULL_SUBSET.out.versions,
        SUBSET_SIZE_SIMILARITY.out.versions, MAKE_SUBSET.out.versions,
        COMPUTE_SIMILARITY.out.versions, CONSISTENCY.out.versions, SUBSET_SIZE.out.versions)
    if (params.demo_data) {
        versions = versions.mix(DEMO_DATA.out.versions)
    }

    if (params.skip_probes) {
        probes = Channel.value([])
        performance = Channel.value([])
    } else {
        LINEAR_PROBE(features)
        probes = LINEAR_PROBE.out.probe
            .toSortedList { a, b -> (a[0] <=> b[0]) ?: (modelIds.indexOf(a[1]) <=> modelIds.indexOf(b[1])) }
        SIM_VS_PERF(sims, probes.map { list -> list.collect { it[2] } })
        performance = SIM_VS_PERF.out.table
        versions = versions.mix(LINEAR_PROBE.out.versions, SIM_VS_PERF.out.versions)
    }

    subsets = MAKE_SUBSET.out.subset.toSortedList { a, b -> a[0] <=> b[0] }.map { l -> l.collect { it[1] } }
    REPORT(
        sims, subsets, CONSISTENCY.out.tables, performance,
        probes.map { list -> list.collect { [it[0], it[1]] } },
        probes.map { list -> list.collect { it[2] } },
        modelsFile, infoFile, collectVersions(versions, [:]).first(),
    )
    // pipeline_info/software_versions.yml (DESIGN §5): every process's block, REPORT's too
    collectVersions(versions.mix(REPORT.out.versions), [storeDir: "${params.outdir}/pipeline_info"])
}
