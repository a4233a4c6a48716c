// SUBSET_SIZE: Pearson r of each imagenet-subset-<N>k similarity matrix with the 10-per-class
// one (upper triangle, k=1), per metric: consistency/subset_size.csv (DESIGN §5).
process SUBSET_SIZE {
    label 'process_single'

    input:
    path similarities, stageAs: 'similarities/*'
    val ready  // CONSISTENCY is done (both publish into consistency/)

    output:
    path 'subset_size.csv', emit: table
    path 'versions.yml', emit: versions

    script:
    def files = similarities instanceof List ? similarities : [similarities]
    def args = files.collect { "--similarities ${it}" }.join(' ')
    """
    pysim-subset-size ${args} --reference 10 --out subset_size.csv ${task.ext.args ?: ''}
    pysim-versions "${task.process}" > versions.yml
    """

    stub:
    """
    echo 'metric,samples_per_class,pearson_r' > subset_size.csv
    pysim-versions "${task.process}" > versions.yml
    """
}
