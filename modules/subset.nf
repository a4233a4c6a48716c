// MAKE_SUBSET: the stratified subset indices of one dataset, drawn from one model's features.
process MAKE_SUBSET {
    tag "${key}"
    label 'process_single'

    input:
    tuple val(key), path(features, stageAs: 'features/*')

    output:
    tuple val(key), path("${key}.json"), emit: subset
    path 'versions.yml', emit: versions

    script:
    """
    pysim-subset --features ${features} --out ${key}.json \\
        --max-samples ${params.max_samples} --seed ${params.seed} --mode ${params.subset_mode} ${task.ext.args ?: ''}
    pysim-versions "${task.process}" > versions.yml
    """

    stub:
    """
    echo '{}' > ${key}.json
    pysim-versions "${task.process}" > versions.yml
    """
}

// FULL_SUBSET: a subset file holding every train sample of one dataset (no --max_samples cap),
// for the ImageNet subset-size sensitivity, whose similarities use all N images per class.
process FULL_SUBSET {
    tag "${key}"
    label 'process_single'

    input:
    tuple val(key), path(features, stageAs: 'features/*')

    output:
    tuple val(key), path("${key}.json"), emit: subset
    path 'versions.yml', emit: versions

    script:
    """
    pysim-subset --features ${features} --out ${key}.json --max-samples 2147483647 \\
        --seed ${params.seed} ${task.ext.args ?: ''}
    pysim-versions "${task.process}" > versions.yml
    """

    stub:
    """
    echo '{}' > ${key}.json
    pysim-versions "${task.process}" > versions.yml
    """
}
