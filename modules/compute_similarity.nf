// COMPUTE_SIMILARITY: every metric for every pair of models on one dataset's subset.
// The metric list arrives as JSON text (hashed by content, wherever the file lives).
process COMPUTE_SIMILARITY {
    tag "${key}"
    label 'gpu'
    publishDir "${params.outdir}/similarities", mode: 'copy', overwrite: true

    input:
    tuple val(key), path(features, stageAs: 'features/*'), path(subset)
    val metrics_json

    output:
    tuple val(key), path("${key}.h5"), emit: similarities

    script:
    def feature_args = features.collect { "--features ${it}" }.join(' ')
    def max_memory = params.max_memory ? "--max-memory ${params.max_memory}" : ''
    """
    export OMP_NUM_THREADS=${task.cpus} MKL_NUM_THREADS=${task.cpus}
    cat > metrics.json <<'PYSIM_METRICS'
${metrics_json}
PYSIM_METRICS
    pysim-similarity ${feature_args} --metrics metrics.json --subset ${subset} \\
        --out ${key}.h5 --normalize ${params.normalize} --device ${params.device} ${max_memory}
    """

    stub:
    """
    touch ${key}.h5
    """
}
