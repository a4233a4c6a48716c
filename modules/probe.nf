// LINEAR_PROBE: test accuracy of a linear classifier on one model's features of one dataset.
// Runs on --probe_device, by default cuda when --device is cuda (-profile gpu), else cpu: on
// cpu with label process_medium (a linear head on cached features is cheap on CPU cores), on
// cuda with label process_gpu, so that the profiles give it a GPU job like extraction
// (partition, gres, --nv, accelerator) and its command says `--device cuda`. The label is
// chosen once, when the process is defined (a `label` cannot be a task closure).
// Memory and time grow with the features file: nextflow.config's `withName: 'LINEAR_PROBE'`.
process LINEAR_PROBE {
    tag "${model_id} ${key}"
    label((params.probe_device ?: params.device) == 'cuda' ? 'process_gpu' : 'process_medium')

    input:
    tuple val(key), val(model_id), path(features, stageAs: 'features/*')

    output:
    tuple val(key), val(model_id), path("${model_id}.json"), emit: probe
    path 'versions.yml', emit: versions

    script:
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    pysim-probe --features ${features} --out '${model_id}.json' \\
        --lrs ${params.probe_lrs} --epochs ${params.probe_epochs} \\
        --batch-size ${params.probe_batch_size} --selection ${params.probe_selection} \\
        --wd-grid ${params.probe_wd_grid} --tie-break ${params.probe_tie_break} \\
        --seeds ${params.probe_seeds} --val-proportion ${params.probe_val_proportion} \\
        --device ${'process_gpu' in task.label ? 'cuda' : 'cpu'}${params.probe_test_from_train ? ' --test-from-train' : ''} \\
        ${task.ext.args ?: ''}
    pysim-versions "${task.process}" > versions.yml
    """

    stub:
    """
    echo '{}' > '${model_id}.json'
    pysim-versions "${task.process}" > versions.yml
    """
}
