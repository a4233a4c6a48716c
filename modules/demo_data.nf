// DEMO_DATA: writes the bundled demo datasets (CLIP-benchmark layout) when no --dataset_root is given.
process DEMO_DATA {
    label 'process_single'

    output:
    path 'demo-data', emit: root
    path 'versions.yml', emit: versions

    script:
    """
    pysim-demo-data --out-dir demo-data ${task.ext.args ?: ''}
    pysim-versions "${task.process}" > versions.yml
    """

    stub:
    """
    mkdir -p demo-data
    pysim-versions "${task.process}" > versions.yml
    """
}
