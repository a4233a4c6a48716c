/*
 * SUBSETS_SIMILARITY: per analysed dataset, MAKE_SUBSET (drawn from the first model's primary
 * features: the same for every model, so adding models later leaves it cached) and
 * COMPUTE_SIMILARITY over every representation; for the ImageNet subset-size sensitivity,
 * FULL_SUBSET (every image) and SUBSET_SIZE_SIMILARITY over the primary representations.
 */

include { MAKE_SUBSET        } from '../../../modules/subset'
include { FULL_SUBSET        } from '../../../modules/subset'
include { COMPUTE_SIMILARITY } from '../../../modules/similarity'
include { COMPUTE_SIMILARITY as SUBSET_SIZE_SIMILARITY } from '../../../modules/similarity'
include { representationRank; compareRanks } from '../utils_pysim_pipeline'

workflow SUBSETS_SIMILARITY {
    take:
    features       // channel: [meta, h5], every representation on the analysed datasets
    size_features  // channel: [meta, h5], primary representations on imagenet-subset-<N>k
    order          // value channel: [ids: model ids in table order, total: representations or null]
    metrics_json   // value: the metric list's JSON text

    main:
    firstPrimary = { meta, f, o -> meta.primary && meta.model == o.ids[0] }
    MAKE_SUBSET(features.combine(order).filter(firstPrimary).map { meta, f, o -> [[dataset: meta.dataset], f] })
    // every representation is one model of the similarity stage: the group of a dataset closes
    // once it holds every representation (or, where VALIDATE left a pattern unexpanded, when
    // extraction ends), its rows in table order, each model's representations in VALIDATE's
    by_dataset = features.combine(order)
        .map { meta, f, o -> [o.total ? groupKey(meta.dataset, o.total) : meta.dataset,
                              [representationRank(meta, o.ids), f]] }
        .groupTuple()
        .map { key, items -> [[dataset: key.toString()],
                              items.sort { a, b -> compareRanks(a[0], b[0]) }.collect { it[1] }] }
        .join(MAKE_SUBSET.out.subset)
    COMPUTE_SIMILARITY(by_dataset, metrics_json)

    // every image of each imagenet-subset-<N>k (no --max_samples cap), one row per model
    FULL_SUBSET(size_features.combine(order).filter(firstPrimary).map { meta, f, o -> [[dataset: meta.dataset], f] })
    SUBSET_SIZE_SIMILARITY(size_features.combine(order)
        .map { meta, f, o -> [groupKey(meta.dataset, o.ids.size()), [o.ids.indexOf(meta.model), f]] }
        .groupTuple()
        .map { key, items -> [[dataset: key.toString()], items.sort { it[0] }.collect { it[1] }] }
        .join(FULL_SUBSET.out.subset), metrics_json)

    emit:
    similarities      = COMPUTE_SIMILARITY.out.similarities      // channel: [meta [dataset], <key>.h5]
    subsets           = MAKE_SUBSET.out.subset                   // channel: [meta [dataset], <key>.json]
    size_similarities = SUBSET_SIZE_SIMILARITY.out.similarities  // channel: [meta [dataset], <key>.h5]
    versions          = MAKE_SUBSET.out.versions.mix(COMPUTE_SIMILARITY.out.versions,
        FULL_SUBSET.out.versions, SUBSET_SIZE_SIMILARITY.out.versions)  // channel: versions.yml
}
