// CONSISTENCY: correlation of similarity matrices across datasets (all and per category pair).
process CONSISTENCY {
    label 'process_medium'
    cache 'deep'

    input:
    path similarities, stageAs: 'similarities/*'
    path models
    path dataset_info
    path model_sets, stageAs: 'model_sets/*'  // [] when --model_sets is not given

    output:
    path 'consistency/*', emit: tables  // files, so that each is published on its own
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def sim_args = similarities.collect { "--similarities '${it}'" }.join(' ')
    def info = dataset_info ? "--dataset-info '${dataset_info}'" : ''
    def sets = model_sets ? "--model-sets '${model_sets}'" : ''
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    pysim-consistency ${sim_args} --models '${models}' ${info} --out-dir consistency ${sets} \\
        ${args}
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """

    stub:
    """
    mkdir -p consistency
    touch consistency/consistency.csv consistency/clusters.csv consistency/metric_agreement.csv \\
        consistency/anchors.csv consistency/anchor_tests.csv
    ${model_sets ? 'touch consistency/model_set_pairs.csv consistency/model_set_pairs_summary.csv' : ''}
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """
}
