def main() -> None:
    raise SystemExit("o2o: under construction")
