/*
 * FEATURES: every model's representations on every dataset the lists need. EXTRACT_FEATURES
 * (one task per model x dataset read from images), then DERIVE_FEATURES (one cheap slicing
 * task per representation x derived dataset, once that model's ImageNet features exist).
 */

include { EXTRACT_FEATURES   } from '../../../modules/extract'
include { DERIVE_FEATURES    } from '../../../modules/derive'
include { representationMeta } from '../utils_pysim_pipeline'

workflow FEATURES {
    take:
    root      // value channel: path, the dataset root (--dataset_root or DEMO_DATA's)
    models    // channel: [meta [model, layer_wise, representations], model entry JSON text]
    datasets  // channel: VALIDATE's dataset rows (maps: id, key, folder, derived_from, role, probe, performance)
    ready     // value channel: true once VALIDATE is done

    main:
    // read from images: the lists' own datasets (and ImageNet once for derived ones)
    extracted = datasets.filter { it.role != 'subset_size' && !it.derived_from }.unique { it.id }
    dataset_dirs = root.combine(extracted).map { dir, ds -> [ds, dir.resolve(ds.folder)] }
    EXTRACT_FEATURES(
        models.combine(dataset_dirs)
            .map { meta, json, ds, dir -> [meta + [dataset: ds.key, dataset_id: ds.id], json, dir] },
        ready)
    // one element per representation: a layer-wise model's task writes several files
    extracted_features = EXTRACT_FEATURES.out.features.flatMap { meta, files ->
        (files instanceof List ? files : [files]).collect { f -> [representationMeta(meta, f), f] } }

    // derived datasets (the lists' and the subset-size ones, each once), keyed by their source
    source_keys = extracted.map { [it.id, it.key] }
    to_derive = datasets.filter { it.derived_from }.unique { it.id }
        .map { [it.derived_from, it] }
        .combine(source_keys, by: 0)
        .map { source, ds, sourceKey -> [sourceKey, ds] }
    DERIVE_FEATURES(extracted_features.map { meta, f -> [meta.dataset, meta, f] }
        .combine(to_derive, by: 0)
        .map { key, meta, f, ds -> [meta + [dataset: ds.key, dataset_id: ds.id], f] })

    emit:
    features = extracted_features.mix(DERIVE_FEATURES.out.features)
    // ^ channel: [meta [dataset, dataset_id, model, id, primary, order], <representation id>.h5]
    versions = EXTRACT_FEATURES.out.versions.mix(DERIVE_FEATURES.out.versions)  // channel: versions.yml
}
