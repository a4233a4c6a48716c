// DEMO_DATA: writes the bundled demo datasets (CLIP-benchmark layout) when no --dataset_root is given.
process DEMO_DATA {
    label 'process_single'

    output:
    path 'demo-data', emit: root
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    pysim-demo-data --out-dir demo-data ${args}
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """

    stub:
    """
    mkdir -p demo-data
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """
}
