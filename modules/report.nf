// REPORT: the self-contained HTML report, built from a results folder laid out as DESIGN §5.
// The folder is assembled in the task directory from the staged inputs; `probe_targets`
// lists the [dataset_key, model_id] of each staged probe file, in the same order;
// `software_versions` is pipeline_info/software_versions.yml (every process but REPORT).
process REPORT {
    label 'process_single'
    cache 'deep'

    input:
    path similarities, stageAs: 'results/similarities/*'
    path subsets, stageAs: 'results/subsets/*'
    path consistency, stageAs: 'results/consistency/*'
    path performance, stageAs: 'results/performance/*'
    val probe_targets
    path probes, stageAs: 'probes_in/?/*'
    path models
    path dataset_info
    path software_versions, stageAs: 'results/pipeline_info/software_versions.yml'

    output:
    path 'report', emit: report
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def links = [probe_targets, probes instanceof List ? probes : [probes]].transpose()
        .collect { target, file ->
            "mkdir -p results/probes/${target[0]} && ln -s \"\$PWD/${file}\" 'results/probes/${target[0]}/${target[1]}.json'"
        }.join('\n    ')
    def info = dataset_info ? "--dataset-info '${dataset_info}'" : ''
    """
    ${links}
    pysim-report --results-dir results --out-dir report --models '${models}' ${info} ${args}
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """

    stub:
    """
    mkdir -p report/figures report/assets
    echo '<html></html>' > report/index.html
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """
}
