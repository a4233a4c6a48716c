// LINEAR_PROBE: test accuracy of a linear classifier on one model's features of one dataset.
// Label process_medium: a linear head on a few thousand cached features is cheap on CPU cores.
process LINEAR_PROBE {
    tag "${model_id} ${key}"
    label 'process_medium'
    publishDir "${params.outdir}/probes/${key}", mode: 'copy', overwrite: true

    input:
    tuple val(key), val(model_id), path(features, stageAs: 'features/*')

    output:
    tuple val(key), val(model_id), path("${model_id}.json"), emit: probe

    script:
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    pysim-probe --features ${features} --out '${model_id}.json' \\
        --lrs ${params.probe_lrs} --epochs ${params.probe_epochs} \\
        --seeds ${params.probe_seeds} --val-proportion ${params.probe_val_proportion} \\
        --device cpu${params.probe_test_from_train ? ' --test-from-train' : ''}
    """

    stub:
    """
    echo '{}' > '${model_id}.json'
    """
}
