// EXTRACT_FEATURES: embeddings of one model on one dataset (train and test split).
// The model arrives as the JSON text of its own table entry, so editing or adding other
// entries never changes this task's hash; the dataset directory is staged under its own name
// so that `--dataset-root .` resolves the dataset id inside the task directory.
// CUDA out of memory ends pysim-extract with exit 75 (retried, conf/base.config): each retry
// runs with half the batch size of the attempt before (conf/modules.config: 256, 128, 64).
process EXTRACT_FEATURES {
    tag "${meta.model} ${meta.dataset}"
    label 'process_gpu'

    input:
    // meta: [model, dataset (key), dataset_id, layer_wise, representations] (VALIDATE's tables)
    tuple val(meta), val(model_json), path(dataset_dir)
    val ready  // VALIDATE is done

    output:
    // a layer-wise entry (VALIDATE's layer_wise) writes one file per representation into the
    // task folder: <representation id>.h5
    tuple val(meta), path("${meta.model}*.h5"), emit: features
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def out = meta.layer_wise ? '.' : "${meta.model}.h5"
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    cat > model_entry.json <<'PYSIM_MODEL_ENTRY'
${model_json}
PYSIM_MODEL_ENTRY
    pysim-extract --models model_entry.json --model-id '${meta.model}' \\
        --dataset-root . --dataset '${meta.dataset_id}' --out '${out}' ${args}
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """

    stub:
    def files = (meta.representations ?: [meta.model]).collect { "'${it}.h5'" }.join(' ')
    """
    touch ${files}
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """
}
