from lightning_critrm.cli import run_command_line

if __name__ == "__main__":  # spawned workers (vLLM, DDP) re-import this module
    run_command_line()
