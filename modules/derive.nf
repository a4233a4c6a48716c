// DERIVE_FEATURES: features of one model on one derived dataset (a BREEDS task or
// imagenet-subset-<N>k), sliced by rows from that model's wds/imagenet1k features file:
// cheap HDF5 reads and writes in blocks, no images and no model (DESIGN §3).
process DERIVE_FEATURES {
    tag "${model_id} ${key}"
    label 'process_single'

    input:
    tuple val(dataset_id), val(key), val(model_id), path(imagenet, stageAs: 'imagenet/*')

    output:
    tuple val(key), val(model_id), path("${model_id}.h5"), emit: features
    path 'versions.yml', emit: versions

    script:
    """
    pysim-derive --features ${imagenet} --dataset '${dataset_id}' --out '${model_id}.h5' \\
        --seed ${params.seed} ${task.ext.args ?: ''}
    pysim-versions "${task.process}" > versions.yml
    """

    stub:
    """
    touch '${model_id}.h5'
    pysim-versions "${task.process}" > versions.yml
    """
}
