"""llmlab: the whole life of a large language model, at laptop scale.

Layers, lowest first; a module imports only from its own layer or lower ones (checked by the import-linter
contract in pyproject.toml; docs/architecture.md has the picture and where a new module goes):

    errors, files, layout, overrides, hardware   user-facing errors, atomic writes, the run directory's paths,
                                                 partial configs, the accelerator table
    tokenizer           byte-level BPE, special tokens, the chat format, chat data in the formats users have
    data                the corpus, sources, records in any format, cleaning, dedup, shards, the default mixture
    model               the transformer, its counts, model folders, imports/exports (HF, GGUF), bits per byte
    tasks | tools       (the labs' shared pieces: checkable tasks, tools; optional until they exist)
    engine              sampling with a KV cache, continuous batching, conversations
    eval                the evaluations and the suite
    train | monitor     the training loops and their config groups | the serving store, arena, scripted users
    report | serve      the report card | the OpenAI-compatible server and the web UI
    pipeline            work that chains stages: data prepare, the speedrun, the flywheel
    labs                one package per lab
    cli                 `llmlab <command>`: each command wires the layers below

Run `llmlab --help` for the command line.
"""

__version__ = "0.1.0"
