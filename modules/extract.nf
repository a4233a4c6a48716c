// EXTRACT_FEATURES: embeddings of one model on one dataset (train and test split).
// The model arrives as the JSON text of its own table entry, so editing or adding other
// entries never changes this task's hash; the dataset directory is staged under its own name
// so that `--dataset-root .` resolves the dataset id inside the task directory.
// CUDA out of memory ends pysim-extract with exit 75 (retried, conf/base.config): each retry
// runs with half the batch size of the attempt before (256, 128, 64 with the defaults).
process EXTRACT_FEATURES {
    tag "${model_id} ${key}"
    label 'process_gpu'

    input:
    tuple val(model_id), val(model_json), val(dataset_id), val(key), path(dataset_dir), val(ready)

    output:
    // a layer-wise entry (module list or pattern) writes one file per representation into the
    // task folder: <model_id>.h5 (primary) and <model_id>@<module>.h5
    tuple val(key), val(model_id), path("${model_id}*.h5"), emit: features
    path 'versions.yml', emit: versions

    script:
    def batch = Math.max(1, (params.batch_size as int).intdiv(1 << (task.attempt - 1)))
    // --decode only when not the default: the command (and so the cache of runs made before
    // the option existed) stays the same with --decode cpu
    def decode = params.decode == 'cpu' ? '' : " --decode ${params.decode}"
    def entry = new groovy.json.JsonSlurper().parseText(model_json)[model_id]
    def names = entry.module_name instanceof List ? entry.module_name : [entry.module_name]
    def out = names.size() > 1 || names.any { it.toString() =~ /[*?\[]/ } ? '.' : "${model_id}.h5"
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    cat > model_entry.json <<'PYSIM_MODEL_ENTRY'
${model_json}
PYSIM_MODEL_ENTRY
    pysim-extract --models model_entry.json --model-id '${model_id}' \\
        --dataset-root . --dataset '${dataset_id}' --out '${out}' \\
        --device ${params.device} --precision ${params.precision} \\
        --batch-size ${batch} --num-workers ${params.num_workers} \\
        --feature-dtype ${params.feature_dtype}${decode} ${task.ext.args ?: ''}
    pysim-versions "${task.process}" > versions.yml
    """

    stub:
    """
    touch '${model_id}.h5'
    pysim-versions "${task.process}" > versions.yml
    """
}
