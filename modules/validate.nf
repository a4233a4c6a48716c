// VALIDATE: checks the model table, dataset list and metric list (and the dataset root) before
// any work, and resolves every model's weights offline in the tasks' own environment (image,
// --weights_dir caches): a missing weights file stops the run here, before any GPU job.
// It writes the tables the workflow builds its channels from (pysim/validate.py), so that
// the workflow keeps no copy of the loaders' rules: models.json (the --model_ids entries,
// weights paths absolute, each with layer_wise and its representation ids in order, patterns
// expanded against the architecture with --check-weights) and datasets.json (rows: id, key, folder, derived_from, role, probe,
// performance; --performance_datasets matched to the dataset list by display name there).
// CONSISTENCY's options are checked here too, before any extraction: the --model_sets file
// (input) and the anchor and anchor-test-metric ids (ext.args, conf/modules.config).
process VALIDATE {
    label 'process_single'

    input:
    path models, stageAs: 'model_table/*'
    path datasets, stageAs: 'dataset_list/*'
    path performance, stageAs: 'performance_list/*'  // --performance_datasets, or [] (the list)
    path metrics
    path dataset_root, stageAs: 'dataset_root'
    path dataset_info
    path model_sets, stageAs: 'model_sets/*'  // --model_sets, or [] (none)
    val model_ids     // comma-separated, or '' for every model
    val subset_sizes  // images per class of the subset-size sensitivity, or ''

    output:
    path 'validate.txt', emit: report
    path 'models.json', emit: models
    path 'datasets.json', emit: datasets
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def info = dataset_info ? "--dataset-info '${dataset_info}'" : ''
    def perf = performance ? "--performance-datasets '${performance}'" : ''
    def sets = model_sets ? "--model-sets '${model_sets}'" : ''
    """
    pysim-validate --models '${models}' --datasets '${datasets}' --metrics '${metrics}' ${perf} \\
        --dataset-root dataset_root ${info} ${sets} --check-weights --model-ids '${model_ids}' \\
        --subset-sizes '${subset_sizes}' --write-models models.json \\
        --write-datasets datasets.json ${args} > validate.txt
    cat validate.txt
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """

    stub:
    // the tables are real (the workflow's channels follow them), the performance match too;
    // CONSISTENCY's options are not checked (the stub's CONSISTENCY does not read them)
    def info = dataset_info ? "--dataset-info '${dataset_info}'" : ''
    def perf = performance ? "--performance-datasets '${performance}'" : ''
    """
    pysim-validate --models '${models}' --datasets '${datasets}' --metrics '${metrics}' ${perf} \\
        ${info} --model-ids '${model_ids}' --subset-sizes '${subset_sizes}' \\
        --write-models models.json --write-datasets datasets.json > validate.txt
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """
}
