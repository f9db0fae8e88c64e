"""Forward-record read throughput: PredictionLog vs plain format through ReadForwardRecords (DirectRunner).

Writes N records (default 10^5) in each format as gzip TFRecord shards under benchmarks/work/, then times
a Beam pipeline ``ReadForwardRecords -> Count`` for each, next to a floor that only reads the same files
(``ReadFromTFRecord -> Count``) and the pure-Python decoders alone (no Beam). Formats:

* ``predict``: PredictionLogs as BulkInferrer writes them for a model exported with the recorder
  (``serving_default``): the request's serialized tf.Example (12 flight features + id) and outputs
  prediction / hidden_norm / example_id, each a [1, 1] tensor.
* ``classify``: classify logs (the request tf.Example is a nested message of the log).
* ``plain``: plain forward-record tf.Examples (id, prediction, model_version, timestamp, hidden_norm).

Usage: python benchmarks/record_read_throughput.py [--records 100000] [--repeats 2]
Writes benchmarks/results/record_read_throughput.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402
from tensorflow_serving.apis import prediction_log_pb2  # noqa: E402

from tfx_curator.components.curator.reading import plain_format, prediction_log, record_io, records  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "work", "record_read")
RESULT = os.path.join(HERE, "results", "record_read_throughput.md")
SHARDS = 4
CARRIERS = [b"AA", b"B6", b"DL", b"EV", b"UA", b"US", b"WN", b"MQ"]
AIRPORTS = [b"EWR", b"JFK", b"LGA", b"ATL", b"ORD", b"LAX", b"SFO", b"BOS", b"MIA", b"DFW"]


def request_example(rng, i: int) -> tf.train.Example:
    example = tf.train.Example()
    f = example.features.feature
    f["example_id"].bytes_list.value.append(b"2013-%07d" % i)
    for name, choices in (("carrier", CARRIERS), ("origin", AIRPORTS[:3]), ("dest", AIRPORTS)):
        f[name].bytes_list.value.append(choices[rng.integers(len(choices))])
    for name, high in (
        ("month", 13),
        ("day", 29),
        ("weekday", 7),
        ("sched_dep_time", 2400),
        ("sched_arr_time", 2400),
    ):
        f[name].int64_list.value.append(int(rng.integers(high)))
    for name in ("distance", "temp", "wind_speed", "visib"):
        f[name].float_list.value.append(float(rng.uniform(0, 100)))
    return example


def tensor(values, dtype):
    values = np.asarray(values)
    return tf.make_tensor_proto(values, dtype=dtype, shape=values.shape)


def predict_log(rng, i: int) -> bytes:
    log = prediction_log_pb2.PredictionLog()
    predict = log.predict_log
    request = predict.request.inputs["examples"]
    request.dtype = tf.string.as_datatype_enum
    request.tensor_shape.dim.add().size = 1
    request.string_val.append(request_example(rng, i).SerializeToString())
    predict.request.model_spec.signature_name = "serving_default"
    predict.response.model_spec.signature_name = "serving_default"
    outputs = predict.response.outputs
    outputs["prediction"].CopyFrom(tensor([[rng.uniform()]], tf.float32))
    outputs["hidden_norm"].CopyFrom(tensor([[rng.uniform(0, 5)]], tf.float32))
    outputs["example_id"].CopyFrom(tensor([[b"2013-%07d" % i]], tf.string))
    return log.SerializeToString()


def classify_log(rng, i: int) -> bytes:
    log = prediction_log_pb2.PredictionLog()
    log.classify_log.request.input.example_list.examples.add().CopyFrom(request_example(rng, i))
    p = float(rng.uniform())
    classes = log.classify_log.response.result.classifications.add()
    classes.classes.add(label="0", score=1 - p)
    classes.classes.add(label="1", score=p)
    return log.SerializeToString()


def plain_record(rng, i: int) -> bytes:
    example = tf.train.Example()
    f = example.features.feature
    f["example_id"].bytes_list.value.append(b"2013-%07d" % i)
    f["prediction"].float_list.value.append(float(rng.uniform()))
    f["model_version"].bytes_list.value.append(b"1700000000")
    f["timestamp"].int64_list.value.append(1_700_000_000 + i)
    f["hidden_norm"].float_list.value.append(float(rng.uniform(0, 5)))
    return example.SerializeToString()


FORMATS = {
    "predict": ("predictionlog", predict_log, "PredictionLog, predict (BulkInferrer + recorder)"),
    "classify": ("predictionlog", classify_log, "PredictionLog, classify"),
    "plain": ("plain", plain_record, "plain tf.Example"),
}


def write_files(name: str, make, n: int) -> tuple[str, list[bytes], int]:
    folder = os.path.join(WORK, f"{name}-{n}")
    pattern = os.path.join(folder, "records-*.gz")
    rng = np.random.default_rng(0)
    sample = [make(rng, i) for i in range(min(n, 5000))]
    if not tf.io.gfile.glob(pattern):
        os.makedirs(folder, exist_ok=True)
        rng = np.random.default_rng(0)
        for shard in range(SHARDS):
            path = os.path.join(folder, f"records-{shard:05d}-of-{SHARDS:05d}.gz")
            with tf.io.TFRecordWriter(path, options="GZIP") as writer:
                for i in range(shard, n, SHARDS):
                    writer.write(make(rng, i))
    size = sum(os.path.getsize(p) for p in tf.io.gfile.glob(pattern))
    return pattern, sample, size


def time_pipeline(build) -> tuple[float, float, dict]:
    """(wall seconds, CPU seconds of this process, counters) of one pipeline run.

    DirectRunner runs the pipeline in this process, so the CPU time covers all of it; it is much less
    sensitive than the wall time to other processes competing for the cores.
    """
    options = PipelineOptions(["--runner=DirectRunner"])
    cpu_start = time.process_time()
    start = time.perf_counter()
    pipeline = beam.Pipeline(options=options)
    build(pipeline)
    result = pipeline.run()
    result.wait_until_finish()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    counts = {}
    for counter in result.metrics().query()["counters"]:
        counts[counter.key.metric.name] = counts.get(counter.key.metric.name, 0) + counter.result
    return elapsed, cpu, counts


def read_only(pattern):
    def build(pipeline):
        _ = (
            pipeline
            | beam.io.ReadFromTFRecord(pattern, coder=beam.coders.BytesCoder())
            | beam.combiners.Count.Globally()
        )

    return build


def read_records(pattern, record_format):
    def build(pipeline):
        outputs = pipeline | record_io.ReadForwardRecords(pattern, record_format, records.RecordConfig())
        _ = outputs[record_io.RECORDS_TAG] | "CountRecords" >> beam.combiners.Count.Globally()
        _ = outputs[record_io.REJECT_TAG] | "CountRejects" >> beam.combiners.Count.Globally()

    return build


def read_records_tf_data(pattern, record_format):
    """The Curator job's way: tfrecord_files.ReadTFRecordFiles (tf.data in a DoFn) + batched decoding."""
    from tfx_curator.components.curator.reading import tfrecord_files

    def build(pipeline):
        batches = pipeline | tfrecord_files.ReadTFRecordFiles(
            tfrecord_files.list_files(pattern), record_io.DEFAULT_BATCH_SIZE
        )
        outputs = batches.batches | record_io.DecodeForwardRecords(
            record_format, records.RecordConfig(), batched=True
        )
        _ = outputs[record_io.RECORDS_TAG] | "CountRecords" >> beam.combiners.Count.Globally()
        _ = outputs[record_io.REJECT_TAG] | "CountRejects" >> beam.combiners.Count.Globally()

    return build


def decode_only(record_format, sample) -> float:
    """Records/s of the decoder alone (no Beam, no file reading)."""
    config = records.RecordConfig()
    start = time.process_time()
    if record_format == "plain":
        for i in range(0, len(sample), record_io.DEFAULT_BATCH_SIZE):
            plain_format.decode_plain_batch(sample[i : i + record_io.DEFAULT_BATCH_SIZE], config)
    else:
        for raw in sample:
            prediction_log.decode_prediction_log_lenient(raw, config)
    return len(sample) / (time.process_time() - start)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
        memory = f"{mem_kb / 1048576:.0f} GiB"
    except (OSError, StopIteration):
        memory = "?"
    return f"{cpu}, {os.cpu_count()} cores, {memory} RAM, {platform.system()} {platform.release()}"


def versions() -> str:
    import tfx_bsl
    from google.protobuf.internal import api_implementation

    return (
        f"Python {platform.python_version()}, apache-beam {beam.__version__}, tensorflow {tf.__version__}, "
        f"tfx-bsl {tfx_bsl.__version__}, numpy {np.__version__}, protobuf {api_implementation.Type()} implementation"
    )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", default=RESULT)
    args = parser.parse_args()
    n = args.records
    load_before = os.getloadavg()[0]

    rows = []
    for name, (record_format, make, label) in FORMATS.items():
        pattern, sample, size = write_files(name, make, n)
        measured = {}
        for key, build in (
            ("floor", read_only(pattern)),
            ("beam", read_records(pattern, record_format)),
            ("tf_data", read_records_tf_data(pattern, record_format)),
        ):
            runs = [time_pipeline(build) for _ in range(args.repeats)]
            wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
            if key != "floor":
                decoded = runs[0][2].get(record_io.DECODED_COUNTER, 0)
                assert decoded == n, f"{name}/{key}: decoded {decoded} of {n} ({runs[0][2]})"
            measured[key] = (n / wall, n / cpu)
        decoder = decode_only(record_format, sample)
        rows.append((label, size / n, measured, decoder))
        print(
            f"{label}: ReadForwardRecords {measured['beam'][0]:,.0f} records/s ({measured['beam'][1]:,.0f}/CPU-s);"
            f" read-only floor {measured['floor'][0]:,.0f}/s; tf.data + batched decode {measured['tf_data'][0]:,.0f}/s"
            f" ({measured['tf_data'][1]:,.0f}/CPU-s); decoder alone {decoder:,.0f}/CPU-s",
            flush=True,
        )

    today = datetime.date.today().isoformat()
    lines = [
        "# Forward-record read throughput",
        "",
        f"Generated by `benchmarks/record_read_throughput.py --records {n} --repeats {args.repeats}` on {today}.",
        "",
        f"- Machine: {machine()}",
        f"- Versions: {versions()}",
        f"- 1-minute load average before / after the runs: {load_before:.1f} / {os.getloadavg()[0]:.1f}"
        " (other processes on the machine share its 2 cores).",
        f"- {n:,} records per format, {SHARDS} gzip TFRecord shards; Beam DirectRunner (default in-process mode);"
        f" best of {args.repeats} runs. records/s = records / wall seconds, pipeline start-up included;"
        " records/CPU-s = records / CPU seconds of the process (DirectRunner runs in-process), the figure to"
        " compare when other jobs share the machine.",
        "- `ReadForwardRecords` = read + decode into `(example_id, record)` pairs, counted (records and rejects);"
        " read-only floor = `ReadFromTFRecord -> Count` on the same files;"
        " tf.data + batched = `tfrecord_files.ReadTFRecordFiles` (tf.data in a DoFn, the Curator job's reader)"
        " then `DecodeForwardRecords(batched=True)`;"
        " decoder alone = the pure decoding functions on 5,000 in-memory records (no Beam, no I/O, CPU time)"
        f" (plain: `decode_plain_batch` in batches of {record_io.DEFAULT_BATCH_SIZE}).",
        "",
        "| format | bytes/record (gzip) | ReadForwardRecords records/s | records/CPU-s"
        " | tf.data + batched decode records/s | records/CPU-s | read-only floor records/s | records/CPU-s"
        " | decoder alone records/CPU-s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, size, measured, decoder in rows:
        cells = [f"{v:,.0f}" for key in ("beam", "tf_data", "floor") for v in measured[key]]
        lines.append(f"| {label} | {size:.0f} | " + " | ".join(cells) + f" | {decoder:,.0f} |")
    lines.append("")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
