from tmx_gateway.spool import Spool, adopt_orphaned_spools, worker_spool_path


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


def test_workers_rewriting_their_spools_at_once_keep_each_their_own(tmp_path, monkeypatch):
    """Worker spools differ only in a suffix (`ev.spool.w1`, `ev.spool.w2`); each rewrite needs a temporary file of
    its own, or one worker's replay replaces the other's file mid-rewrite."""
    import tmx_gateway.spool as spool_module

    w1 = Spool(worker_spool_path(str(tmp_path / "ev.spool"), 1), 1 << 20)
    w2 = Spool(worker_spool_path(str(tmp_path / "ev.spool"), 2), 1 << 20)
    w1.append([entry(1), entry(2)])
    w2.append([entry(3), entry(4)])
    real_replace, interleaved = spool_module.os.replace, []

    def replace_after_the_other_worker(src, dst):  # w2 rewrites between w1's temp write and its rename
        if not interleaved:
            interleaved.append(True)
            w2.rewrite([entry(4)])
        real_replace(src, dst)

    monkeypatch.setattr(spool_module.os, "replace", replace_after_the_other_worker)
    w1.rewrite([entry(2)])
    assert interleaved
    assert list(w1.entries()) == [entry(2)]
    assert list(w2.entries()) == [entry(4)]


def test_spools_of_workers_that_are_gone_are_folded_into_worker_0s(tmp_path):
    base = str(tmp_path / "ev.spool")
    spools = [Spool(worker_spool_path(base, i), 1 << 20) for i in range(4)]
    for i, spool in enumerate(spools):
        spool.append([entry(10 * i), entry(10 * i + 1)])
    with open(spools[3].path, "a") as fh:
        fh.write('{"s": "torn')  # a worker killed mid-append
    (tmp_path / "ev.spool.w3.tmp").write_text("a rewrite's leftover, not a spool\n")

    moved = adopt_orphaned_spools(base, workers=2)  # restarted with 2 workers: 2 and 3 are gone

    assert moved == 5  # two events from each, and the torn line (kept as a line of its own, skipped on read)
    assert list(spools[0].entries()) == [entry(0), entry(1), entry(20), entry(21), entry(30), entry(31)]
    assert list(spools[1].entries()) == [entry(10), entry(11)]  # a worker that still runs keeps its own
    assert not spools[2].path.exists() and not spools[3].path.exists()
    assert (tmp_path / "ev.spool.w3.tmp").exists()
    assert adopt_orphaned_spools(base, workers=2) == 0


def test_adoption_ignores_the_size_limit_and_a_missing_directory(tmp_path):
    base = str(tmp_path / "ev.spool")
    Spool(worker_spool_path(base, 1), 1 << 20).append([entry(i) for i in range(50)])
    assert adopt_orphaned_spools(base, workers=1) == 50
    assert list(Spool(base, 100).entries()) == [entry(i) for i in range(50)]  # nothing dropped by a small limit
    assert adopt_orphaned_spools(str(tmp_path / "absent" / "ev.spool"), workers=1) == 0
