import sys


def main() -> int:
    # `run` must not import the CLI (and with it aiogram) before the port is bound.
    if sys.argv[1:] == ["run"]:
        from supervisor.server import run_server

        return run_server()
    from supervisor.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(main())
