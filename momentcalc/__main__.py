from .cli import main

if __name__ == "__main__":  # not when a spawned worker process (processes.py) imports it
    main()
