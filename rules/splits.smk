rule make_splits:
    input:
        **face_manifests(),
    output:
        parts=[f"results/splits/{d}/{p}.csv" for d, p in PARTS],
        summary="results/splits/summary.csv",
    log:
        "results/logs/make_splits.log",
    benchmark:
        "results/benchmarks/make_splits.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        manifests=" ".join(f"{s}=results/faces/{s}/manifest.parquet" for s in SOURCES),
        cfg=split_config(),
    shell:
        "python -m dfstudy.splits make --manifests {params.manifests} --config-json {params.cfg}"
        " --out-dir results/splits > {log} 2>&1"


rule pack_split:
    input:
        "results/splits/{dataset}/{part}.csv",
    output:
        "results/splits/{dataset}/{part}.npz",
    log:
        "results/logs/pack_split/{dataset}/{part}.log",
    benchmark:
        "results/benchmarks/pack_split/{dataset}/{part}.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    shell:
        "python -m dfstudy.splits pack --part {input} --out {output} > {log} 2>&1"


rule audit_leakage:
    input:
        rules.make_splits.output.parts,
    output:
        "results/splits/audit.csv",
    log:
        "results/logs/audit_leakage.log",
    benchmark:
        "results/benchmarks/audit_leakage.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cfg=split_config(),
    shell:
        "python -m dfstudy.splits audit --splits-dir results/splits --config-json {params.cfg}"
        " --out {output} > {log} 2>&1"
