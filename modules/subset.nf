// MAKE_SUBSET: the stratified subset indices of one dataset, drawn from one model's features.
process MAKE_SUBSET {
    tag "${meta.dataset}"
    label 'process_single'

    input:
    tuple val(meta), path(features, stageAs: 'features/*')  // meta: [dataset (key)]

    output:
    tuple val(meta), path("${meta.dataset}.json"), emit: subset
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    pysim-subset --features '${features}' --out '${meta.dataset}.json' ${args}
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """

    stub:
    """
    echo '{}' > ${meta.dataset}.json
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """
}

// FULL_SUBSET: a subset file holding every train sample of one dataset (no --max_samples cap),
// for the ImageNet subset-size sensitivity, whose similarities use all N images per class.
process FULL_SUBSET {
    tag "${meta.dataset}"
    label 'process_single'

    input:
    tuple val(meta), path(features, stageAs: 'features/*')  // meta: [dataset (key)]

    output:
    tuple val(meta), path("${meta.dataset}.json"), emit: subset
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    pysim-subset --features '${features}' --out '${meta.dataset}.json' --max-samples 2147483647 ${args}
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """

    stub:
    """
    echo '{}' > ${meta.dataset}.json
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """
}
