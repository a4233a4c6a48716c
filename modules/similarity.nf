// COMPUTE_SIMILARITY: every metric for every pair of models on one dataset's subset.
// The metric list arrives as JSON text (hashed by content, wherever the file lives). The
// engine's memory budget (conf/modules.config) is --similarity_memory, else 80% of this
// task's own memory request, so that the engine fits its SLURM job.
process COMPUTE_SIMILARITY {
    tag "${meta.dataset}"
    label 'process_gpu'

    input:
    // meta: [dataset (key)]; the representations' files in similarity-row order; the subset
    tuple val(meta), path(features, stageAs: 'features/*'), path(subset)
    val metrics_json

    output:
    tuple val(meta), path("${meta.dataset}.h5"), emit: similarities
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def feature_args = (features instanceof List ? features : [features])
        .collect { "--features '${it}'" }.join(' ')
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    cat > metrics.json <<'PYSIM_METRICS'
${metrics_json}
PYSIM_METRICS
    pysim-similarity ${feature_args} --metrics metrics.json --subset '${subset}' \\
        --out '${meta.dataset}.h5' ${args}
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """

    stub:
    """
    touch '${meta.dataset}.h5'
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """
}
