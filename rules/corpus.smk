rule synthesize_corpus:
    output:
        index="results/corpus/corpus.csv",
    log:
        "results/logs/synthesize_corpus.log",
    benchmark:
        "results/benchmarks/synthesize_corpus.tsv"
    params:
        spec=as_json({k: v for k, v in config["corpus"].items() if k not in ("synthesize", "root")}),
        seed=config["seed"],
        root=config["corpus"]["root"],
    threads: workflow.cores
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "python -m dfstudy.synth --out {params.root} --spec-json {params.spec}"
        " --seed {params.seed} --threads {threads} > {log} 2>&1"
