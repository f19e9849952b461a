"""The labs: one measured instrument per package, each on top of the shared pieces (tasks, tools, engine, trainers,
evaluations) and the pipeline, through their public functions.

    llmlab/labs/<lab>/          one package per lab (scaling, think, rl, tools, redteam, zip, ...)
        config.py               the experiment's typed config, with a `quick` preset and the default run
        run.py                  the experiment: every measurement through LabRecord (resumable per-item JSONL,
                                results.json, PNGs), comparisons on the same items in one run
        section.py              the report card's section, written with LabRecord.write_section
    llmlab/cli/<lab>.py         its command, `llmlab <lab> [--preset quick]`

record.py is what every lab shares: the lab's folder <run_dir>/labs/<lab>/ and its files. docs/architecture.md
says where the pieces a lab needs live (checkable tasks and tools below the engine and the trainers, attacks above
the model) and which layers a lab may import.
"""
