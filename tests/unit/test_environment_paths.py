"""Which folders count as installed distributions in the recorded runtime environment."""

from __future__ import annotations

from durableflow.runtime.environment import installed_distributions


def test_vendored_copies_inside_site_packages_do_not_count(tmp_path):
    site = tmp_path / "venv" / "lib" / "site-packages"
    (site / "requests-2.31.0.dist-info").mkdir(parents=True)
    vendored = site / "ray" / "thirdparty_files"
    (vendored / "psutil-5.9.6.dist-info").mkdir(parents=True)
    elsewhere = tmp_path / "extra"
    (elsewhere / "colorama-0.4.6.dist-info").mkdir(parents=True)
    found = installed_distributions([str(site), str(vendored), str(elsewhere)])
    assert found == {"requests": "2.31.0", "colorama": "0.4.6"}
