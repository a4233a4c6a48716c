/*
 * PROBES: LINEAR_PROBE per model x performance dataset (primary representations), then
 * SIM_VS_PERF: each model pair's similarity against its probe accuracy gap.
 */

include { LINEAR_PROBE } from '../../../modules/probe'
include { SIM_VS_PERF  } from '../../../modules/sim_vs_perf'

workflow PROBES {
    take:
    features        // channel: [meta, h5], primary representations on the performance datasets
    similarities    // value channel: list of the analysed datasets' similarity files (key order)
    datasets_table  // path: VALIDATE's datasets.json (whose probes each dataset uses)
    order           // value channel: [ids: model ids in table order, total]

    main:
    LINEAR_PROBE(features)
    probes = LINEAR_PROBE.out.probe.combine(order)
        .toSortedList { a, b -> (a[0].dataset <=> b[0].dataset) ?:
            (a[2].ids.indexOf(a[0].model) <=> b[2].ids.indexOf(b[0].model)) }
        .map { list -> list.collect { meta, f, o -> [meta, f] } }
    SIM_VS_PERF(similarities, probes.map { list -> list.collect { it[1] } }, datasets_table)

    emit:
    probes      = probes                    // value channel: list of [meta, <model_id>.json], dataset then table order
    performance = SIM_VS_PERF.out.table     // channel: similarity_vs_gap.csv
    versions    = LINEAR_PROBE.out.versions.mix(SIM_VS_PERF.out.versions)  // channel: versions.yml
}
