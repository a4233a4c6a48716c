// SIM_VS_PERF: correlation between a model pair's similarity and its probe accuracy gap.
// Probe files of different datasets share names, so each is staged in its own folder.
// VALIDATE's datasets.json says whose probes each dataset uses (--performance_datasets).
process SIM_VS_PERF {
    label 'process_single'
    cache 'deep'

    input:
    path similarities, stageAs: 'similarities/*'
    path probes, stageAs: 'probes/?/*'
    path datasets_table, stageAs: 'validate/datasets.json'

    output:
    path 'similarity_vs_gap.csv', emit: table
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def sim_args = similarities.collect { "--similarities '${it}'" }.join(' ')
    def probe_args = probes.collect { "--probes '${it}'" }.join(' ')
    """
    pysim-sim-vs-perf ${sim_args} ${probe_args} --datasets-table '${datasets_table}' \\
        --out similarity_vs_gap.csv ${args}
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """

    stub:
    """
    touch similarity_vs_gap.csv
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """
}
