/*
 * PYSIM: the science (DESIGN §7). VALIDATE -> FEATURES (EXTRACT_FEATURES [-> DERIVE_FEATURES])
 *   -> SUBSETS_SIMILARITY (MAKE_SUBSET -> COMPUTE_SIMILARITY [; FULL_SUBSET ->
 *   SUBSET_SIZE_SIMILARITY]) -> PROBES (LINEAR_PROBE -> SIM_VS_PERF; not with --skip_probes)
 *   -> ANALYSIS_REPORT (CONSISTENCY [-> SUBSET_SIZE] -> REPORT). Every channel below is built
 * from VALIDATE's tables (models.json, datasets.json); every step calls one bin/ entry point.
 */

include { DEMO_DATA          } from '../modules/demo_data'
include { VALIDATE           } from '../modules/validate'
include { FEATURES           } from '../subworkflows/local/features'
include { SUBSETS_SIMILARITY } from '../subworkflows/local/similarity'
include { PROBES             } from '../subworkflows/local/probes'
include { ANALYSIS_REPORT    } from '../subworkflows/local/analysis'
include { readModelTable; modelEntryJson; modelOrder; boxed } from '../subworkflows/local/utils_pysim_pipeline'

workflow PYSIM {
    main:
    def modelsFile = file(params.models)
    def metricsFile = file(params.metrics)
    def infoFile = params.dataset_info ? file(params.dataset_info) : []
    def setsFile = params.model_sets ? file(params.model_sets) : []
    def perfFile = params.performance_datasets ? file(params.performance_datasets) : []
    root = params.demo_data ? DEMO_DATA().root : Channel.value(file(params.dataset_root))

    // VALIDATE first: the selected models' weights are checked before any extraction, and
    // its tables are what the channels below are built from (no rule of the loaders here)
    VALIDATE(modelsFile, file(params.datasets), perfFile, metricsFile, root, infoFile, setsFile,
             params.model_ids ? params.model_ids.toString() : '',
             params.subset_sizes ? params.subset_sizes.toString() : '')
    // a constant gate: EXTRACT waits for VALIDATE without hashing its (table-dependent) output
    ready = VALIDATE.out.report.map { true }
    table = VALIDATE.out.models.map { readModelTable(it) }  // value channel: id -> entry
    order = table.map { modelOrder(it) }  // value: [ids: table order, total: representations]
    models = table.flatMap { t -> t.collect { id, entry ->
        [[model: id, layer_wise: entry.layer_wise, representations: entry.representations],
         modelEntryJson(id, entry)] } }  // channel: [meta, entry JSON text]
    datasets = VALIDATE.out.datasets.splitJson()  // channel: dataset rows (maps)
    datasets.filter { it.role == 'extracted' }.unique { it.id }.subscribe {
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

    FEATURES(root, models, datasets, ready)
    // analysed: the list's datasets (ImageNet itself only when listed); subset-size: primary
    // representations of imagenet-subset-<N>k; probed: primary ones of the performance list
    analysed_keys = boxed(datasets.filter { it.role == 'analysed' }.map { it.key })
    size_keys = boxed(datasets.filter { it.role == 'subset_size' }.map { it.key })
    probe_keys = boxed(datasets.filter { it.probe }.map { it.key }.unique())
    features = FEATURES.out.features.combine(analysed_keys)
        .filter { meta, f, keys -> meta.dataset in keys }.map { meta, f, keys -> [meta, f] }
    size_features = FEATURES.out.features.combine(size_keys)
        .filter { meta, f, keys -> meta.dataset in keys && meta.primary }.map { meta, f, keys -> [meta, f] }

    SUBSETS_SIMILARITY(features, size_features, order, metricsFile.text)
    sims = SUBSETS_SIMILARITY.out.similarities
        .toSortedList { a, b -> a[0].dataset <=> b[0].dataset }
        .map { list -> list.collect { it[1] } }  // value: similarity files, key order
    subsets = SUBSETS_SIMILARITY.out.subsets
        .toSortedList { a, b -> a[0].dataset <=> b[0].dataset }
        .map { list -> list.collect { it[1] } }  // value: subset files, key order

    versions = VALIDATE.out.versions.mix(FEATURES.out.versions, SUBSETS_SIMILARITY.out.versions)
    if (params.demo_data) {
        versions = versions.mix(DEMO_DATA.out.versions)
    }
    if (params.skip_probes) {
        probes = Channel.value([])
        performance = Channel.value([])
    } else {
        PROBES(FEATURES.out.features.combine(probe_keys)
                   .filter { meta, f, keys -> meta.dataset in keys && meta.primary }
                   .map { meta, f, keys -> [meta, f] },
               sims, VALIDATE.out.datasets, order)
        probes = PROBES.out.probes
        performance = PROBES.out.performance
        versions = versions.mix(PROBES.out.versions)
    }

    ANALYSIS_REPORT(sims, subsets, SUBSETS_SIMILARITY.out.size_similarities, performance, probes,
                    modelsFile, infoFile, setsFile, versions, params.outdir.toString())

    emit:
    report = ANALYSIS_REPORT.out.report  // channel: the report folder
}
