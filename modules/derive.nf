// DERIVE_FEATURES: features of one representation on one derived dataset (a BREEDS task or
// imagenet-subset-<N>k), sliced by rows from that representation's wds/imagenet1k features
// file: cheap HDF5 reads and writes in blocks, no images and no model (DESIGN §3).
process DERIVE_FEATURES {
    tag "${meta.id} ${meta.dataset}"
    label 'process_single'

    input:
    // meta: the representation's, dataset and dataset_id the derived one's
    tuple val(meta), path(imagenet, stageAs: 'imagenet/*')

    output:
    tuple val(meta), path("${meta.id}.h5"), emit: features
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    pysim-derive --features '${imagenet}' --dataset '${meta.dataset_id}' --out '${meta.id}.h5' ${args}
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """

    stub:
    """
    touch '${meta.id}.h5'
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """
}
