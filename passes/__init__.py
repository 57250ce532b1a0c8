"""Graph passes over the hwopt IR (installed as `hwopt.passes`)."""
