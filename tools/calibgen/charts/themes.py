"""Themes (titles, units, category pools, value ranges) and opening lines for the charts."""

from __future__ import annotations

from ..common import DAYS, MONTHS, NAMES

BAR_THEMES = [
    ("Fruit sold at the market", "kg", ["Apples", "Bananas", "Cherries", "Grapes", "Lemons", "Mangoes", "Pears", "Plums"], (5, 95), False),
    ("Books read per class", "books", ["Class A", "Class B", "Class C", "Class D", "Class E", "Class F", "Class G"], (8, 60), False),
    ("Monthly rainfall", "mm", MONTHS, (10, 180), True),
    ("Museum visitors per day", "visitors", DAYS, (40, 400), True),
    ("Energy use by appliance", "kWh", ["Fridge", "Heater", "Oven", "Lights", "Washer", "Dryer", "TV"], (6, 90), False),
    ("Students per club", "students", ["Chess", "Drama", "Music", "Robotics", "Art", "Science", "Sports"], (5, 48), False),
    ("Trees planted by volunteers", "trees", NAMES[:10], (3, 40), False),
]
LINE_THEMES = [
    ("Average temperature", "deg C", "month", (2, 30), ("City A", "City B")),
    ("Annual revenue", "million $", "year", (10, 90), ("North store", "South store")),
    ("Website visitors", "thousands", "year", (5, 120), ("Site X", "Site Y")),
    ("Town population", "thousands", "year", (20, 80), ("Eastville", "Westville")),
    ("Bicycles sold", "bikes", "month", (15, 140), ("Shop 1", "Shop 2")),
]
PIE_THEMES = [
    ("How students get to school", ["Bus", "Car", "Bike", "Walk", "Train", "Scooter"]),
    ("Monthly household budget", ["Rent", "Food", "Transport", "Savings", "Leisure", "Utilities"]),
    ("Favourite sport in a survey", ["Football", "Tennis", "Swimming", "Cycling", "Running", "Basketball"]),
    ("Electricity by source", ["Solar", "Wind", "Hydro", "Gas", "Coal", "Nuclear"]),
    ("Time spent on a weekday", ["Sleep", "School", "Homework", "Play", "Meals", "Reading"]),
]
CHART_OPENERS = [
    "Okay, let me look at this {what}.",
    "Alright, the image is a {what}. Let me read it carefully.",
    "Let me start by understanding what this {what} shows.",
    "Hmm, so I'm given a {what}. First I need to read off the values.",
    "Okay, so there's a {what} here and I need to answer a question about it.",
]
