#!/usr/bin/env nextflow
/*
 * pysim: cross-dataset consistency of representational similarity between vision models.
 * VALIDATE -> EXTRACT_FEATURES [-> DERIVE_FEATURES] -> MAKE_SUBSET -> COMPUTE_SIMILARITY
 *   -> LINEAR_PROBE (--performance_datasets) -> CONSISTENCY -> SIM_VS_PERF -> REPORT
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

/** True when an entry lists several modules (or a pattern): its extraction gives several
 *  representations (`<model_id>`, `<model_id>@<module>`; DESIGN §3). */
def isLayerWise(Object entry) {
    def names = entry instanceof Map ? entry.module_name : null
    if (names instanceof List) {
        return names.size() > 1 || names.any { it.toString() =~ /[*?\[]/ }
    }
    return names != null && names.toString() =~ /[*?\[]/
}

/** Model and order of a representation id: the table position, then primary first and the
 *  further modules in natural order (blocks.2 before blocks.10). */
def repOrder(List modelIds, String id) {
    def base = id.contains('@') ? id.substring(0, id.indexOf('@')) : id
    def rest = id.contains('@') ? '1' + id.substring(id.indexOf('@') + 1)
        .replaceAll(/\d+/) { it.padLeft(10, '0') } : '0'
    return [modelIds.indexOf(base), rest]
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
    def layerWise = new JsonSlurper().parse(modelsFile.toFile())
        .findAll { id, entry -> id in modelIds }.any { id, entry -> isLayerWise(entry) }
    def infoFile = params.dataset_info ? file(params.dataset_info) : []
    def setsFile = params.model_sets ? file(params.model_sets) : []

    root = params.demo_data ? DEMO_DATA().root : Channel.value(file(params.dataset_root))

    // VALIDATE first: the selected models' weights are checked before any extraction, and
    // its tables (models.json, datasets.json) are what the channels below are built from.
    def perfFile = params.performance_datasets ? file(params.performance_datasets) : []
    VALIDATE(modelsFile, file(params.datasets), perfFile, metricsFile, root, infoFile,
             params.model_ids ? params.model_ids.toString() : '',
             params.subset_sizes ? params.subset_sizes.toString() : '')
    // A constant gate: EXTRACT waits for VALIDATE without hashing its (table-dependent) output.
    ready = VALIDATE.out.report.map { true }

    model_ch = VALIDATE.out.models.splitJson().map { [it.key, modelEntryJson(it.key, it.value)] }
    datasets = VALIDATE.out.datasets.splitJson()
    // extracted from images: the list's own datasets (and ImageNet once for derived ones)
    extracted = datasets.filter { it.role != 'subset_size' && !it.derived_from }.unique { it.id }
    extracted.filter { it.role == 'extracted' }.subscribe {
        log.info("${it.id}: extracted for the derived datasets of the lists; not in --datasets, " +
                 "so not analysed as a dataset of its own")
    }
    datasets.filter { it.role == 'performance' }.subscribe {
        log.info("${it.id}: probed for --performance_datasets; not in --datasets, so not " +
                 "analysed as a dataset of its own")
    }
    datasets.filter { it.role == 'analysed' && !it.performance }.subscribe {
        log.warn("${it.id}: no dataset of --performance_datasets has its display name " +
                 "(--dataset_info); left out of performance/similarity_vs_gap.csv")
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
    // one element per representation: a layer-wise model's task gives several files, each
    // `<representation id>.h5` (the primary one `<model_id>.h5`)
    extracted_features = EXTRACT_FEATURES.out.features.flatMap { key, id, files ->
        (files instanceof List ? files : [files]).collect { f -> [key, f.name[0..-4], f] } }
    DERIVE_FEATURES(extracted_features.combine(to_derive, by: 0)
        .map { key, id, f, derivedId, derivedKey -> [derivedId, derivedKey, id, f] })
    features = extracted_features.mix(DERIVE_FEATURES.out.features)
        .combine(analysed_keys)
        .filter { key, id, f, keys -> key in keys }
        .map { key, id, f, keys -> [key, id, f] }

    // ImageNet subset-size sensitivity: every image of each imagenet-subset-<N>k (no
    // --max_samples cap), similarities kept apart from the analysed datasets' (subset_size/).
    size_features = DERIVE_FEATURES.out.features.combine(size_keys)
        .filter { key, id, f, keys -> key in keys && !id.contains('@') }
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

    // every representation is one model of the similarity stage; a layer-wise table's count
    // is known only after extraction (patterns), so its groups close when extraction ends
    keyed = features.map { key, id, f -> [key, [repOrder(modelIds, id), f]] }
    grouped = layerWise ? keyed.groupTuple() : keyed.groupTuple(size: modelIds.size())
    by_dataset = grouped
        .map { key, items -> [key, items.sort { a, b -> (a[0][0] <=> b[0][0]) ?: (a[0][1] <=> b[0][1]) }
            .collect { it[1] }] }
        .join(MAKE_SUBSET.out.subset)
    COMPUTE_SIMILARITY(by_dataset, metricsFile.text)
    sims = COMPUTE_SIMILARITY.out.similarities
        .toSortedList { a, b -> a[0] <=> b[0] }
        .map { list -> list.collect { it[1] } }

    CONSISTENCY(sims, modelsFile, infoFile, setsFile)
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
        // the performance list's datasets (VALIDATE's probe column), primary representations
        // only; full ImageNet on its own extraction, never on a derived subset
        probe_keys = boxed(datasets.filter { it.probe }.map { it.key }.unique())
        LINEAR_PROBE(extracted_features.mix(DERIVE_FEATURES.out.features)
            .combine(probe_keys)
            .filter { key, id, f, keys -> key in keys && !id.contains('@') }
            .map { key, id, f, keys -> [key, id, f] })
        probes = LINEAR_PROBE.out.probe
            .toSortedList { a, b -> (a[0] <=> b[0]) ?: (modelIds.indexOf(a[1]) <=> modelIds.indexOf(b[1])) }
        SIM_VS_PERF(sims, probes.map { list -> list.collect { it[2] } }, VALIDATE.out.datasets)
        performance = SIM_VS_PERF.out.table
        versions = versions.mix(LINEAR_PROBE.out.versions, SIM_VS_PERF.out.versions)
    }

    subsets = MAKE_SUBSET.out.subset.toSortedList { a, b -> a[0] <=> b[0] }.map { l -> l.collect { it[1] } }
    REPORT(
        sims, subsets, CONSISTENCY.out.tables.mix(SUBSET_SIZE.out.table).collect(sort: true), performance,
        probes.map { list -> list.collect { [it[0], it[1]] } },
        probes.map { list -> list.collect { it[2] } },
        modelsFile, infoFile, collectVersions(versions, [:]).first(),
    )
    // pipeline_info/software_versions.yml (DESIGN §5): every process's block, REPORT's too
    collectVersions(versions.mix(REPORT.out.versions), [storeDir: "${params.outdir}/pipeline_info"])
}
