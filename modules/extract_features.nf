// EXTRACT_FEATURES: embeddings of one model on one dataset (train and test split).
// The model arrives as the JSON text of its own table entry, so editing or adding other
// entries never changes this task's hash; the dataset directory is staged under its own name
// so that `--dataset-root .` resolves the dataset id inside the task directory.
process EXTRACT_FEATURES {
    tag "${model_id} ${key}"
    label 'process_gpu'
    publishDir "${params.outdir}/features/${key}", mode: params.publish_mode, overwrite: true,
        enabled: params.publish_features

    input:
    tuple val(model_id), val(model_json), val(dataset_id), val(key), path(dataset_dir), val(ready)

    output:
    tuple val(key), val(model_id), path("${model_id}.h5"), emit: features

    script:
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    cat > model_entry.json <<'PYSIM_MODEL_ENTRY'
${model_json}
PYSIM_MODEL_ENTRY
    pysim-extract --models model_entry.json --model-id '${model_id}' \\
        --dataset-root . --dataset '${dataset_id}' --out '${model_id}.h5' \\
        --device ${params.device} --precision ${params.precision} \\
        --batch-size ${params.batch_size} --num-workers ${params.num_workers}
    """

    stub:
    """
    touch '${model_id}.h5'
    """
}
