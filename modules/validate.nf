// VALIDATE: checks the model table, dataset list and metric list (and the dataset root) before
// any work, and resolves every model's weights offline in the tasks' own environment (image,
// --weights_dir caches): a missing weights file stops the run here, before any GPU job.
process VALIDATE {
    label 'process_single'

    input:
    val models_json
    path datasets
    path metrics
    path dataset_root, stageAs: 'dataset_root'
    path dataset_info

    output:
    path 'validate.txt', emit: report
    path 'versions.yml', emit: versions

    script:
    def info = dataset_info ? "--dataset-info ${dataset_info}" : ''
    """
    cat > models.json <<'PYSIM_MODELS'
${models_json}
PYSIM_MODELS
    pysim-validate --models models.json --datasets ${datasets} --metrics ${metrics} \\
        --dataset-root dataset_root ${info} --check-weights ${task.ext.args ?: ''} > validate.txt
    cat validate.txt
    pysim-versions "${task.process}" > versions.yml
    """

    stub:
    """
    echo "inputs OK (stub)" > validate.txt
    pysim-versions "${task.process}" > versions.yml
    """
}
