// SUBSET_SIZE: Appendix C from the imagenet-subset-<N>k similarity files: |difference| between
// consecutive sizes per model pair (subset_size_delta.csv), the matrices in the 10-per-class
// dendrogram order (subset_size_matrices.csv) and pysim's r with the 10-per-class matrix
// (subset_size.csv), all in consistency/ (DESIGN §5).
process SUBSET_SIZE {
    label 'process_single'

    input:
    path similarities, stageAs: 'similarities/*'
    val ready  // CONSISTENCY is done (both publish into consistency/)

    output:
    path 'subset_size*.csv', emit: table
    path 'versions.yml', emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def files = similarities instanceof List ? similarities : [similarities]
    def sim_args = files.collect { "--similarities '${it}'" }.join(' ')
    """
    pysim-subset-size ${sim_args} --reference 10 --out subset_size.csv ${args}
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """

    stub:
    """
    echo 'metric,samples_per_class,pearson_r' > subset_size.csv
    touch subset_size_delta.csv subset_size_matrices.csv
    pysim-versions "${task.process.tokenize(':')[-1]}" > versions.yml
    """
}
