// VALIDATE: checks the model table, dataset list and metric list (and the dataset root) before any work.
process VALIDATE {
    label 'cpu_small'
    publishDir "${params.outdir}/pipeline_info", mode: 'copy', overwrite: true

    input:
    path models
    path datasets
    path metrics
    path dataset_root, stageAs: 'dataset_root'
    path dataset_info

    output:
    path 'validate.txt', emit: report

    script:
    def info = dataset_info ? "--dataset-info ${dataset_info}" : ''
    """
    pysim-validate --models ${models} --datasets ${datasets} --metrics ${metrics} \\
        --dataset-root dataset_root ${info} > validate.txt
    cat validate.txt
    """

    stub:
    """
    echo "inputs OK (stub)" > validate.txt
    """
}
