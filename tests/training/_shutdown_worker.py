"""Processes that do not exit by themselves, for ``tests/training/test_shutdown.py``.

``python tests/training/_shutdown_worker.py train JSON`` runs ``train.py``'s ``main`` on slow
storage: each ``np.load`` by an input-pipeline thread takes ``read_delay`` seconds, and
with ``stall`` (the default) the reads never return once the Ctrl-C checkpoint is on
disk (a network mount that stops answering); each read left hanging prints
``READ BLOCKED`` on stderr. JSON holds ``argv`` (train.py's arguments), ``read_delay``,
``deadline`` (``train.EXIT_DEADLINE``) and ``stall``.

``python tests/training/_shutdown_worker.py hang KIND DEADLINE`` arms
`gradtts_tf.training.exit_deadline.arm_exit_deadline` (unless DEADLINE is 0) and exits into a hang
of kind ``pipeline`` (a tf.data iterator over a generator stuck in a read, left in a
reference cycle as Keras leaves its iterators: interpreter shutdown destroys it and
waits for the read) or ``thread`` (a non-daemon thread that never ends: shutdown
joins it).
"""

import json
import sys
import threading
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def stalling_reads(read_delay: float) -> threading.Event:
    """Makes the input pipeline's ``np.load`` slow, and stuck once the returned event
    is set; the main thread's reads stay as they are."""
    stalled = threading.Event()
    never = threading.Event()
    load = np.load

    def slow_load(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            # Slower than the steps consume, so the pipeline is always reading.
            never.wait(read_delay)
            if stalled.is_set():
                print("READ BLOCKED", file=sys.stderr, flush=True)
                never.wait()
        return load(*args, **kwargs)

    np.load = slow_load
    return stalled


def run_train(args: dict) -> None:
    from gradtts_tf.cli import train
    from gradtts_tf.training import callbacks as cb

    stalled = stalling_reads(args["read_delay"])
    interrupted = cb.TrainingInterrupted.__init__

    def init(self, *a, **k):
        # Raised once the interrupt checkpoint is on disk: the storage stalls now.
        if args.get("stall", True):
            stalled.set()
        interrupted(self, *a, **k)

    cb.TrainingInterrupted.__init__ = init
    train.EXIT_DEADLINE = args["deadline"]
    train.main(args["argv"])


def hang(kind: str, deadline: float) -> None:
    from gradtts_tf.training.exit_deadline import arm_exit_deadline

    holder = None
    if kind == "pipeline":
        import tensorflow as tf

        never = threading.Event()

        def read():
            yield np.zeros([4], np.float32)
            never.wait()  # a read that never returns
            yield np.zeros([4], np.float32)

        ds = tf.data.Dataset.from_generator(read, output_signature=tf.TensorSpec([4]))

        class EpochIterator:
            pass

        holder = EpochIterator()
        holder.iterator = iter(ds.prefetch(1))
        holder.cycle = holder
        next(holder.iterator)  # the prefetch thread goes on to the stuck read
    elif kind == "thread":
        threading.Thread(target=threading.Event().wait, name="stuck reader").start()
    else:
        raise ValueError(kind)
    if deadline > 0:  # 0: the hang as it is, unbounded
        print(f"armed: {arm_exit_deadline(deadline, 130)}", flush=True)
    del holder  # garbage now, destroyed by a later collection (at the latest at shutdown)
    sys.exit(130)


if __name__ == "__main__":
    if sys.argv[1] == "train":
        run_train(json.loads(sys.argv[2]))
    else:
        hang(sys.argv[2], float(sys.argv[3]))
