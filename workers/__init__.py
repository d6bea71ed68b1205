"""accord's workers: threads run and resumed by ``accord worker`` processes over PostgreSQL
(procrastinate jobs), and the relay that publishes accord's events to a broker."""
