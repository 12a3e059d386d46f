rule align_faces:
    input:
        "results/videos/{source}.parquet",
    output:
        manifest="results/faces/{source}/shard_{shard}.parquet",
        crops=directory("results/faces/{source}/shard_{shard}"),
    log:
        "results/logs/align_faces/{source}/{shard}.log",
    benchmark:
        "results/benchmarks/align_faces/{source}/{shard}.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: 4
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        shards=config["preprocess"]["shards"],
        frames=config["preprocess"]["frames_per_video"],
        frames_training=training_frames,
        size=config["preprocess"]["face_size"],
        margin=config["preprocess"]["margin"],
        detect_width=config["preprocess"]["detect_width"],
        min_face=config["preprocess"]["min_face"],
    shell:
        "python -m dfstudy.faces extract --videos {input} --shard {wildcards.shard} --shards {params.shards}"
        " --out-dir {output.crops} --manifest {output.manifest} --frames {params.frames}"
        " --frames-training {params.frames_training}"
        " --size {params.size} --margin {params.margin} --detect-width {params.detect_width}"
        " --min-face {params.min_face} --threads {threads} > {log} 2>&1"


rule merge_faces:
    input:
        expand("results/faces/{{source}}/shard_{shard}.parquet", shard=SHARDS),
    output:
        manifest="results/faces/{source}/manifest.parquet",
        skipped="results/faces/{source}/skipped.csv",
    log:
        "results/logs/merge_faces/{source}.log",
    benchmark:
        "results/benchmarks/merge_faces/{source}.tsv"
    conda:
        "../envs/preprocess.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        max_failed=config["preprocess"]["max_failed_share"],
    shell:
        "python -m dfstudy.faces merge --shards {input} --out {output.manifest}"
        " --skipped {output.skipped} --max-failed-share {params.max_failed} > {log} 2>&1"
