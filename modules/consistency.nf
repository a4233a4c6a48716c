// CONSISTENCY: correlation of similarity matrices across datasets (all and per category pair).
process CONSISTENCY {
    label 'process_medium'
    cache 'deep'
    publishDir "${params.outdir}", mode: 'copy', overwrite: true

    input:
    path similarities, stageAs: 'similarities/*'
    path models
    path dataset_info

    output:
    path 'consistency', emit: tables

    script:
    def sim_args = similarities.collect { "--similarities ${it}" }.join(' ')
    def info = dataset_info ? "--dataset-info ${dataset_info}" : ''
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    pysim-consistency ${sim_args} --models ${models} ${info} --out-dir consistency \\
        --permutations ${params.permutations} --bootstrap ${params.bootstrap} --seed ${params.seed}
    """

    stub:
    """
    mkdir -p consistency
    touch consistency/consistency.csv consistency/clusters.csv
    """
}
