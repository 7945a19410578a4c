from lightning_critrm.cli import main

if __name__ == "__main__":  # spawned workers (vLLM, DDP) re-import this module
    main()
