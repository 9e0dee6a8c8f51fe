from tmx_gateway.spool import Spool


def entry(i):
    return ("tmx.audit.acme", f"payload-{i}".encode(), {"Nats-Msg-Id": f"id-{i}", "Tmx-Type": "t"})


def test_round_trip_in_order(tmp_path):
    spool = Spool(tmp_path / "s", 1 << 20)
    assert spool.size == 0 and list(spool.entries()) == []
    spool.append([entry(1), entry(2)])
    spool.append([entry(3)])
    assert list(spool.entries()) == [entry(1), entry(2), entry(3)]
    spool.rewrite([entry(3)])
    assert list(spool.entries()) == [entry(3)]
    spool.rewrite([])
    assert spool.size == 0 and not (tmp_path / "s").exists()


def test_a_full_spool_drops_and_counts(tmp_path):
    spool = Spool(tmp_path / "s", 300)
    dropped = spool.append([entry(i) for i in range(10)])
    kept = list(spool.entries())
    assert dropped == 10 - len(kept) and dropped > 0 and spool.dropped == dropped
    assert kept == [entry(i) for i in range(len(kept))] and spool.size <= 300


def test_a_corrupt_line_is_skipped_not_fatal(tmp_path):
    spool = Spool(tmp_path / "s", 1 << 20)
    spool.append([entry(1)])
    with open(spool.path, "a") as fh:
        fh.write("{not json\n")
    spool.append([entry(2)])
    assert list(spool.entries()) == [entry(1), entry(2)]
