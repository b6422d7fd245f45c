"""An arq worker on Redis that starts Zoho CRM merges and waits for them across restarts.

Run the modules from the repository root with `python -m`, such as
`python -m arq examples.arq_worker.worker.WorkerSettings`; see README.md here.
"""
