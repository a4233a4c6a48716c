/*
 * ANALYSIS_REPORT: CONSISTENCY (across datasets), SUBSET_SIZE (Appendix C, when ImageNet is
 * listed), the HTML REPORT, and pipeline_info/software_versions.yml.
 */

include { CONSISTENCY     } from '../../../modules/consistency'
include { SUBSET_SIZE     } from '../../../modules/subset_size'
include { REPORT          } from '../../../modules/report'
include { collectVersions } from '../utils_pysim_pipeline'

workflow ANALYSIS_REPORT {
    take:
    similarities       // value channel: list of the analysed datasets' similarity files (key order)
    subsets            // value channel: list of their subset files (key order)
    size_similarities  // channel: [meta, h5] of the subset-size sensitivity (empty: none)
    performance        // value channel: similarity_vs_gap.csv, or [] (--skip_probes)
    probes             // value channel: list of [meta [dataset, model, ...], probe JSON], or []
    models_file        // path: --models
    info_file          // path: --dataset_info, or []
    sets_file          // path: --model_sets, or []
    versions           // channel: versions.yml of every process before
    outdir             // string: --outdir

    main:
    CONSISTENCY(similarities, models_file, info_file, sets_file)
    // after CONSISTENCY: it publishes the whole consistency/ folder, where this table goes too
    SUBSET_SIZE(size_similarities.map { meta, f -> f }.collect(), CONSISTENCY.out.tables.map { true })
    all_versions = versions.mix(CONSISTENCY.out.versions, SUBSET_SIZE.out.versions)
    REPORT(
        similarities, subsets, CONSISTENCY.out.tables.mix(SUBSET_SIZE.out.table).collect(sort: true),
        performance,
        probes.map { list -> list.collect { [it[0].dataset, it[0].model] } },
        probes.map { list -> list.collect { it[1] } },
        models_file, info_file, collectVersions(all_versions, [:]).first(),
    )
    // pipeline_info/software_versions.yml (DESIGN §5): every process's block, REPORT's too
    collectVersions(all_versions.mix(REPORT.out.versions), [storeDir: "${outdir}/pipeline_info"])

    emit:
    report = REPORT.out.report  // channel: the report folder
}
