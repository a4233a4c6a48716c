// COMPUTE_SIMILARITY: every metric for every pair of models on one dataset's subset.
// The metric list arrives as JSON text (hashed by content, wherever the file lives). The
// engine's memory budget is --similarity_memory, else 80% of this task's own memory request,
// so that the engine fits its SLURM job.
process COMPUTE_SIMILARITY {
    tag "${key}"
    label 'process_gpu'

    input:
    tuple val(key), path(features, stageAs: 'features/*'), path(subset)
    val metrics_json

    output:
    tuple val(key), path("${key}.h5"), emit: similarities
    path 'versions.yml', emit: versions

    script:
    def feature_args = features.collect { "--features ${it}" }.join(' ')
    def budget = params.similarity_memory
        ?: (task.memory ? "${(task.memory.toMega() * 0.8) as long}MB" : null)
    def max_memory = budget ? "--max-memory ${budget}" : ''
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    cat > metrics.json <<'PYSIM_METRICS'
${metrics_json}
PYSIM_METRICS
    pysim-similarity ${feature_args} --metrics metrics.json --subset ${subset} \\
        --out ${key}.h5 --normalize ${params.normalize} --device ${params.device} ${max_memory} ${task.ext.args ?: ''}
    pysim-versions "${task.process}" > versions.yml
    """

    stub:
    """
    touch ${key}.h5
    pysim-versions "${task.process}" > versions.yml
    """
}
