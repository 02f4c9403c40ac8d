"""pytest hooks for tests/: the fuzzer's counts at the end of the report."""


def pytest_terminal_summary(terminalreporter):
    lines = [value for report in terminalreporter.stats.get("passed", []) +
             terminalreporter.stats.get("failed", [])
             for name, value in getattr(report, "user_properties", []) if name == "fuzz"]
    if lines:
        terminalreporter.section("differential fuzzing against JAX")
        for line in lines:
            terminalreporter.write_line(line)
