__version__ = "0.1.0"


def load_ipython_extension(ipython):
    """``%load_ext flightbase``: the ``%flightbase`` / ``%%flightbase`` magics (flightbase.magics)."""
    from flightbase.magics import FlightbaseMagics

    ipython.register_magics(FlightbaseMagics)
