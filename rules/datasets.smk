rule index_videos:
    input:
        corpus_flag,
    output:
        "results/videos/{source}.parquet",
    log:
        "results/logs/index_videos/{source}.log",
    benchmark:
        "results/benchmarks/index_videos/{source}.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        spec=lambda wildcards: as_json(config["sources"][wildcards.source]),
    shell:
        "python -m dfstudy.datasets --source {wildcards.source} --spec-json {params.spec}"
        " --out {output} > {log} 2>&1"
