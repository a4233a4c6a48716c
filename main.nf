#!/usr/bin/env nextflow
/*
 * pysim: cross-dataset consistency of representational similarity between vision models
 * (Ciernik et al., ICML 2025). The shape of an nf-core pipeline (DESIGN §2, §7):
 * PIPELINE_INITIALISATION (--help, parameter checks, the launch summary, params_<time>.json),
 * NFCORE_PYSIM (the science: workflows/pysim.nf and subworkflows/local/), then
 * PIPELINE_COMPLETION (completion summary, --email / --email_on_fail, --hook_url).
 */
nextflow.enable.dsl = 2

include { PYSIM                   } from './workflows/pysim'
include { PIPELINE_INITIALISATION } from './subworkflows/local/utils_pysim_pipeline'
include { PIPELINE_COMPLETION     } from './subworkflows/local/utils_pysim_pipeline'

workflow NFCORE_PYSIM {
    main:
    PYSIM()

    emit:
    report = PYSIM.out.report  // channel: the report folder
}

workflow {
    PIPELINE_INITIALISATION(params.help, params.outdir.toString())
    NFCORE_PYSIM()
    PIPELINE_COMPLETION(params.outdir.toString(), params.email, params.email_on_fail, params.hook_url)
}
