"""Science problems (kinematics, Ohm's law, density, energy, moles, dilution, free fall, heat)."""

from __future__ import annotations

import random
from fractions import Fraction

from ..common import dec
from ..reasoning import DOUBLE_CHECKS

MOLECULES = [("H2O", {"H": 2, "O": 1}), ("CO2", {"C": 1, "O": 2}), ("NaCl", {"Na": 1, "Cl": 1}), ("CaCO3", {"Ca": 1, "C": 1, "O": 3}),
             ("NH3", {"N": 1, "H": 3}), ("CH4", {"C": 1, "H": 4}), ("C6H12O6", {"C": 6, "H": 12, "O": 6}), ("H2SO4", {"H": 2, "S": 1, "O": 4}),
             ("MgO", {"Mg": 1, "O": 1}), ("KCl", {"K": 1, "Cl": 1})]
ATOMIC = {"H": Fraction(1), "C": Fraction(12), "N": Fraction(14), "O": Fraction(16), "Na": Fraction(23), "Cl": Fraction(71, 2),
          "Ca": Fraction(40), "S": Fraction(32), "Mg": Fraction(24), "K": Fraction(39)}


def science_problem(rng: random.Random, k: int) -> tuple[str, list[str], str]:
    t = k % 9
    if t == 0:
        a, s = rng.randint(1, 6), rng.randint(2, 12)
        v, dist = a * s, Fraction(a * s * s, 2)
        q = f"A car starts from rest and accelerates uniformly at {a} m/s^2 for {s} seconds. What is its final speed, and how far does it travel?"
        r = ["Uniform acceleration from rest, so u = 0. Two formulas: v = u + at and s = ut + (1/2)at^2.",
             f"v = 0 + {a} x {s} = {v} m/s.", f"s = (1/2) x {a} x {s}^2 = (1/2) x {a} x {s * s} = {dec(dist)} m.",
             rng.choice(DOUBLE_CHECKS) + f" Average speed is (0 + {v}) / 2 = {dec(Fraction(v, 2))} m/s, and over {s} s that's {dec(Fraction(v, 2))} x {s} = {dec(dist)} m. Same.",
             f"In km/h the final speed is {v} x 3.6 = {dec(Fraction(v * 36, 10))} km/h, a plausible number for a car."]
        return q, r, f"v = {v} m/s, distance = {dec(dist)} m"
    if t == 1:
        R = rng.randint(2, 60)
        I = rng.choice([Fraction(1, 4), Fraction(1, 2), Fraction(1), Fraction(3, 2), Fraction(2), Fraction(3)])
        V = I * R
        P = V * I
        q = f"A {dec(V)} V battery is connected across a {R} ohm resistor. What current flows, and how much power does the resistor dissipate?"
        r = [f"Ohm's law: I = V / R = {dec(V)} / {R} = {dec(I)} A.",
             f"Power: P = V x I = {dec(V)} x {dec(I)} = {dec(P)} W.",
             rng.choice(DOUBLE_CHECKS) + f" P = I^2 R = {dec(I)}^2 x {R} = {dec(I * I)} x {R} = {dec(I * I * R)} W, and P = V^2 / R = {dec(V * V)} / {R} = {dec(V * V / R)} W. All three agree.",
             "Units: volts over ohms is amperes, volts times amperes is watts. Fine."]
        return q, r, f"I = {dec(I)} A, P = {dec(P)} W"
    if t == 2:
        vol = rng.choice([10, 20, 25, 40, 50, 80, 100, 125, 200, 250])
        while True:
            mass = rng.randint(max(1, vol // 3), vol * 3)
            if mass != vol:
                break
        rho = Fraction(mass, vol)
        q = f"A solid block has a mass of {mass} g and a volume of {vol} cm^3. What is its density, and will it float in water?"
        r = [f"Density = mass / volume = {mass} / {vol} = {dec(rho)} g/cm^3.",
             "Water has a density of about 1.00 g/cm^3. An object floats if it is less dense than the liquid.",
             f"{dec(rho)} is {'less' if rho < 1 else 'greater'} than 1, so the block {'floats' if rho < 1 else 'sinks'}.",
             rng.choice(DOUBLE_CHECKS) + f" {dec(rho)} x {vol} = {dec(rho * vol)} g, the mass. Another view: {vol} cm^3 of water weighs {vol} g, "
             f"and the block weighs {mass} g, {'less' if mass < vol else 'more'} than the water it would displace when fully submerged.",
             f"If it floats, the fraction below the surface equals the density ratio, {dec(rho)}." if rho < 1 else "It will rest on the bottom."]
        return q, r, f"{dec(rho)} g/cm^3; it {'floats' if rho < 1 else 'sinks'}"
    if t == 3:
        m, v = rng.choice([2, 5, 10, 50, 60, 70, 80, 1000, 1200, 1500]), rng.randint(2, 30)
        ke = Fraction(m * v * v, 2)
        q = f"An object of mass {m} kg moves at {v} m/s. What is its kinetic energy?"
        r = ["KE = (1/2) m v^2.", f"v^2 = {v}^2 = {v * v}.", f"m v^2 = {m} x {v * v} = {m * v * v}.", f"Half of that: {dec(ke)} J.",
             (f"That's {dec(ke / 1000)} kJ." if ke >= 1000 else "That's a modest amount of energy."),
             rng.choice(DOUBLE_CHECKS) + f" (1/2) x {m} = {dec(Fraction(m, 2))}, times {v * v} = {dec(ke)}. Same.",
             f"Note that doubling the speed would quadruple the energy to {dec(4 * ke)} J, because v is squared."]
        return q, r, f"{dec(ke)} J"
    if t == 4:
        name, comp = rng.choice(MOLECULES)
        M = sum(ATOMIC[e] * c for e, c in comp.items())
        n = rng.choice([Fraction(1, 10), Fraction(1, 4), Fraction(1, 2), Fraction(3, 2), Fraction(2), Fraction(5, 2), Fraction(3), Fraction(4)])
        mass = n * M
        used = ", ".join(f"{e} = {dec(ATOMIC[e])}" for e in comp)
        q = f"How many moles are in {dec(mass)} g of {name}? Use atomic masses {used}."
        r = [f"First the molar mass of {name}: " + " + ".join(f"{c} x {dec(ATOMIC[e])}" for e, c in comp.items()) + f" = {dec(M)} g/mol.",
             "Let me recompute that piece by piece: " + ", ".join(f"{e}: {c} x {dec(ATOMIC[e])} = {dec(c * ATOMIC[e])}" for e, c in comp.items()) + f". Sum {dec(M)}.",
             f"Moles = mass / molar mass = {dec(mass)} / {dec(M)} = {dec(n)} mol.",
             rng.choice(DOUBLE_CHECKS) + f" {dec(n)} mol x {dec(M)} g/mol = {dec(n * M)} g. That's the given mass.",
             f"That's about {float(n) * 6.022:.3f} x 10^23 formula units, using Avogadro's number 6.022 x 10^23 per mole."]
        return q, r, f"{dec(n)} mol"
    if t == 5:
        c1 = rng.choice([Fraction(1, 2), Fraction(1), Fraction(2), Fraction(5), Fraction(6)])
        v1 = rng.choice([10, 20, 25, 50, 100])
        v2 = v1 * rng.choice([2, 4, 5, 8, 10])
        c2 = c1 * v1 / v2
        q = f"{v1} mL of a {dec(c1)} mol/L salt solution is diluted with water to a total volume of {v2} mL. What is the new concentration?"
        r = ["Dilution doesn't change the amount of solute, so C1 V1 = C2 V2.",
             f"Moles of solute: {dec(c1)} mol/L x {v1} mL = {dec(c1 * v1)} mmol (mol/L times mL gives millimoles).",
             f"C2 = C1 V1 / V2 = {dec(c1 * v1)} / {v2} = {dec(c2)} mol/L.",
             rng.choice(DOUBLE_CHECKS) + f" The volume grew by a factor {v2 // v1}, so the concentration must drop by the same factor: {dec(c1)} / {v2 // v1} = {dec(c2)}.",
             f"Water added: {v2} - {v1} = {v2 - v1} mL, but the question asks for the concentration, not the water volume."]
        return q, r, f"{dec(c2)} mol/L"
    if t == 6:
        tt = rng.randint(1, 6)
        g = Fraction(49, 5)
        hgt = g * tt * tt / 2
        q = f"A stone is dropped from rest from a height of {dec(hgt)} m. Ignoring air resistance and taking g = 9.8 m/s^2, how long does it take to hit the ground, and how fast is it going?"
        r = ["Free fall from rest: h = (1/2) g t^2, so t = sqrt(2h / g).",
             f"2h = 2 x {dec(hgt)} = {dec(2 * hgt)}. Divided by 9.8: {dec(2 * hgt)} / 9.8 = {dec(2 * hgt / g)}. sqrt({dec(2 * hgt / g)}) = {tt} s.",
             f"Speed at impact: v = g t = 9.8 x {tt} = {dec(g * tt)} m/s.",
             rng.choice(DOUBLE_CHECKS) + f" Energy: v^2 = 2 g h = 2 x 9.8 x {dec(hgt)} = {dec(2 * g * hgt)}, and {dec(g * tt)}^2 = {dec(g * g * tt * tt)}. Same.",
             "The mass of the stone doesn't matter without air resistance."]
        return q, r, f"t = {tt} s, v = {dec(g * tt)} m/s"
    if t == 7:
        m, a = rng.choice([2, 4, 5, 10, 20, 25, 50]), rng.randint(1, 8)
        F, tt = m * a, rng.randint(2, 10)
        q = f"A net force of {F} N acts on a {m} kg cart that starts at rest on a frictionless track. What is its acceleration, and what is its speed after {tt} s?"
        r = [f"Newton's second law: a = F / m = {F} / {m} = {a} m/s^2.",
             f"Constant acceleration from rest: v = a t = {a} x {tt} = {a * tt} m/s.",
             rng.choice(DOUBLE_CHECKS) + f" Impulse F t = {F} x {tt} = {F * tt} N s equals the momentum m v = {m} x {a * tt} = {m * a * tt} kg m/s. Consistent.",
             "Frictionless means the applied force is the net force, so nothing needs to be subtracted."]
        return q, r, f"a = {a} m/s^2, v = {a * tt} m/s"
    m, dT = rng.choice([100, 150, 200, 250, 500, 750, 1000]), rng.randint(5, 70)
    Q = Fraction(418, 100) * m * dT
    q = f"How much heat is needed to warm {m} g of water by {dT} degrees C? Use c = 4.18 J/(g C)."
    r = ["Q = m c dT.", f"{m} x 4.18 = {dec(Fraction(418, 100) * m)} J per degree.",
         f"Times {dT}: {dec(Fraction(418, 100) * m)} x {dT} = {dec(Q)} J, which is {dec(Q / 1000)} kJ.",
         rng.choice(DOUBLE_CHECKS) + f" {m} x {dT} = {m * dT}, and {m * dT} x 4.18 = {dec(Q)}. Same.",
         "The specific heat is per gram, and the mass is already in grams, so no unit conversion is needed."]
    return q, r, f"{dec(Q)} J ({dec(Q / 1000)} kJ)"
