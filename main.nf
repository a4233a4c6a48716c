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
include { EXTRACT_FEATURES   } from './modules/extract_features'
include { DERIVE_FEATURES    } from './modules/derive_features'
include { MAKE_SUBSET        } from './modules/make_subset'
include { COMPUTE_SIMILARITY } from './modules/compute_similarity'
include { FULL_SUBSET        } from './modules/full_subset'
include { COMPUTE_SIMILARITY as SUBSET_SIZE_SIMILARITY } from './modules/compute_similarity'
include { SUBSET_SIZE        } from './modules/subset_size'
include { LINEAR_PROBE       } from './modules/linear_probe'
include { CONSISTENCY        } from './modules/consistency'
include { SIM_VS_PERF        } from './modules/sim_vs_perf'
include { REPORT             } from './modules/report'

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

/** Hard links (--publish_mode link, the default for features) cannot cross file systems. */
def checkPublishMode() {
    if (params.publish_mode != 'link' || !params.publish_features) {
        return
    }
    def out = fileStore(file(params.outdir.toString()))
    def work = fileStore(workflow.workDir)
    if (out != null && work != null && out != work) {
        fail("--publish_mode link: --outdir ${params.outdir} and the work folder ${workflow.workDir} are on different file systems, where hard links cannot go; add --publish_mode copy (or put them on one file system)")
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

/** The model table as an ordered map id -> entry, restricted to --model_ids. */
def loadModels(modelsFile) {
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
    return ids.collectEntries { [(it): table[it]] }
}

/** A model entry whose relative weights path is made absolute (against the table's folder). */
def withAbsoluteWeights(Map entry, modelsFile) {
    def copy = new LinkedHashMap(entry)
    if (copy.weights instanceof String && !copy.weights.startsWith('/')) {
        copy.weights = modelsFile.parent.resolve(copy.weights).normalize().toString()
    }
    return copy
}

/** A model table (id -> entry) as JSON text, weights paths absolute. */
def modelTableJson(Map models, modelsFile) {
    def table = models.collectEntries { id, entry -> [(id): withAbsoluteWeights(entry, modelsFile)] }
    return JsonOutput.prettyPrint(JsonOutput.toJson(table))
}

// Derived datasets (DESIGN §3), the rule of pysim/config.py (derived_kind): bare ids whose
// features are sliced from ImageNet's, with no folder of their own under --dataset_root.
IMAGENET_ID = 'wds/imagenet1k'
BREEDS_TASKS = ['entity13', 'entity30', 'living17', 'nonliving26']

/** Whether a dataset id is derived from ImageNet (a BREEDS task or imagenet-subset-<N>k). */
def isDerived(String id) {
    return id in BREEDS_TASKS || id ==~ /imagenet-subset-[1-9][0-9]*k/
}

/** A dataset id with its output key and folder name (pysim/config.py dataset_key, dataset_dir). */
def datasetRecord(String id) {
    def parts = id.tokenize('/')
    def folder = parts.size() == 1 ? parts[0] : "${parts[0]}_${parts[1..-1].join('-')}"
    return [id: id, key: id.replace('/', '_'), folder: folder, derived: isDerived(id)]
}

/** Dataset ids of the list with their output key and folder name (DESIGN §3). */
def loadDatasets(datasetsFile) {
    def ids = datasetsFile.readLines().collect { it.split('#', 2)[0].trim() }.findAll { it }
    if (!ids) {
        fail("--datasets: ${datasetsFile}: no dataset ids")
    }
    return ids.collect { datasetRecord(it) }
}

/** imagenet-subset-<N>k records of the subset-size sensitivity (--subset_sizes plus the
 *  reference 10), when ImageNet is in the list (as wds/imagenet1k or an imagenet-subset). */
def subsetSizeDatasets(List datasets) {
    def imagenet = datasets.any { it.id == IMAGENET_ID || it.id ==~ /imagenet-subset-[1-9][0-9]*k/ }
    if (!params.subset_sizes || !imagenet) {
        return []
    }
    def sizes = params.subset_sizes.toString().tokenize(',')*.trim()*.toInteger() + [10]
    return sizes.unique().sort().collect { datasetRecord("imagenet-subset-${it}k") }
}

/** The datasets to extract: the list's own, and ImageNet once when a derived id needs it. */
def extractionDatasets(List datasets) {
    def extracted = datasets.findAll { !it.derived }
    def derived = datasets.findAll { it.derived }
    if (derived && !extracted.any { it.id == IMAGENET_ID }) {
        log.info("${IMAGENET_ID}: extracted for the derived datasets ${derived*.id.join(', ')}; " +
                 "not in --datasets, so not analysed as a dataset of its own")
        extracted << datasetRecord(IMAGENET_ID)
    }
    return extracted
}

if (params.help) {
    log.info(helpText())
    exit 0
}
checkParams()

workflow {
    def modelsFile = file(params.models)
    def metricsFile = file(params.metrics)
    def models = loadModels(modelsFile)
    def modelIds = models.keySet() as List
    def datasets = loadDatasets(file(params.datasets))
    def infoFile = params.dataset_info ? file(params.dataset_info) : []

    root = params.demo_data ? DEMO_DATA().root : Channel.value(file(params.dataset_root))

    // The selected models only (--model_ids): their weights are checked before any extraction.
    VALIDATE(modelTableJson(models, modelsFile), file(params.datasets), metricsFile, root, infoFile)
    // A constant gate: EXTRACT waits for VALIDATE without hashing its (table-dependent) output.
    ready = VALIDATE.out.report.map { true }

    model_ch = Channel.fromList(modelIds.collect { [it, modelTableJson([(it): models[it]], modelsFile)] })
    dataset_ch = root.combine(Channel.fromList(extractionDatasets(datasets)))
        .map { dir, ds -> [ds.id, ds.key, dir.resolve(ds.folder)] }
    EXTRACT_FEATURES(model_ch.combine(dataset_ch).combine(ready))

    // Derived datasets (the list's and the subset-size ones, each once): one cheap slicing task
    // per (model, derived id) once that model's ImageNet features exist; the list's join the
    // extracted ones downstream. ImageNet itself goes downstream only when it is in the list.
    def imagenetKey = datasetRecord(IMAGENET_ID).key
    def analysedKeys = datasets*.key
    def sizeDatasets = subsetSizeDatasets(datasets)
    def sizeKeys = sizeDatasets*.key
    def toDerive = (datasets.findAll { it.derived } + sizeDatasets).unique { it.id }
    DERIVE_FEATURES(EXTRACT_FEATURES.out.features
        .filter { key, id, f -> key == imagenetKey }
        .combine(Channel.fromList(toDerive.collect { [it.id, it.key] }))
        .map { key, id, f, derivedId, derivedKey -> [derivedId, derivedKey, id, f] })
    features = EXTRACT_FEATURES.out.features
        .filter { key, id, f -> key in analysedKeys }
        .mix(DERIVE_FEATURES.out.features.filter { key, id, f -> key in analysedKeys })

    // ImageNet subset-size sensitivity: every image of each imagenet-subset-<N>k (no
    // --max_samples cap), similarities kept apart from the analysed datasets' (subset_size/).
    size_features = DERIVE_FEATURES.out.features.filter { key, id, f -> key in sizeKeys }
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

    if (params.skip_probes) {
        probes = Channel.value([])
        performance = Channel.value([])
    } else {
        LINEAR_PROBE(features)
        probes = LINEAR_PROBE.out.probe
            .toSortedList { a, b -> (a[0] <=> b[0]) ?: (modelIds.indexOf(a[1]) <=> modelIds.indexOf(b[1])) }
        SIM_VS_PERF(sims, probes.map { list -> list.collect { it[2] } })
        performance = SIM_VS_PERF.out.table
    }

    subsets = MAKE_SUBSET.out.subset.toSortedList { a, b -> a[0] <=> b[0] }.map { l -> l.collect { it[1] } }
    REPORT(
        sims, subsets, CONSISTENCY.out.tables, performance,
        probes.map { list -> list.collect { [it[0], it[1]] } },
        probes.map { list -> list.collect { it[2] } },
        modelsFile, infoFile,
    )
}
