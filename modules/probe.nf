// LINEAR_PROBE: test accuracy of a linear classifier on one model's features of one dataset.
// Runs on --probe_device, by default cuda when --device is cuda (-profile gpu), else cpu: on
// cpu with label process_medium (a linear head on cached features is cheap on CPU cores), on
// cuda with label process_gpu, so that the profiles give it a GPU job like extraction
// (partition, gres, --nv, accelerator) and its command says `--device cuda`. The label is
// chosen once, when the process is defined: Nextflow matches `withLabel:` only on the labels
// a script declares (not on one a config sets), so this is the one place where a module
// reads a parameter. Memory and time grow with the features file: nextflow.config's
// `withName: 'LINEAR_PROBE'`; the options: conf/modules.config.
process LINEAR_PROBE {
    tag "${meta.model} ${meta.dataset}"
    label((params.probe_device ?: params.device) == 'cuda' ? 'process_gpu' : 'process_medium')

    input:
    tuple val(meta), path(features, stageAs: 'features/*')  // meta: [dataset (key), model]

    output:
    tuple val(meta), path("${meta.model}.json"), emit: probe
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    pysim-probe --features '${features}' --out '${meta.model}.json' \\
        --device ${'process_gpu' in task.label ? 'cuda' : 'cpu'} ${args}
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """

    stub:
    """
    echo '{}' > '${meta.model}.json'
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """
}
